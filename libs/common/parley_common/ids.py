"""Identifiers: the conversation key and new ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_KEY_SEPARATOR = "|"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """(tenant, channel, external user): the Kafka partition key of everything about one conversation,
    so one customer's events stay in order on every topic."""

    tenant_id: str
    channel_id: str
    external_user_id: str

    def __str__(self) -> str:
        return _KEY_SEPARATOR.join((self.tenant_id, self.channel_id, self.external_user_id))

    def encode(self) -> bytes:
        return str(self).encode()

    @classmethod
    def parse(cls, text: str) -> ConversationKey:
        tenant_id, channel_id, external_user_id = text.split(_KEY_SEPARATOR, 2)
        return cls(tenant_id, channel_id, external_user_id)
