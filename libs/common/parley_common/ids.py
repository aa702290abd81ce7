"""Identifiers: the conversation key, new ids, and the id of a contact a customer's first message creates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

_KEY_SEPARATOR = "|"
_FIRST_MESSAGE_CONTACTS = uuid.UUID("0c6f7d4e-93b1-4a8e-b2d5-7e41a9c3f058")


def new_id() -> str:
    return uuid.uuid4().hex


def contact_id_of_first_message(message_event_id: uuid.UUID | str) -> str:
    """The id of the contact that a new customer's first message creates, derived from that message's event id.

    Contacts and the router read the same message on their own: the router names the card on the conversation it
    opens on that message, instead of saving the conversation again when contacts announces the card. Whoever learns
    the customer otherwise (a card made by an agent, one the router's projection has not read yet) is told by that
    card's own event. Two messages never share an event id (ingest derives it from the tenant, channel and the
    provider's message id), so two customers never share a contact id; the id is a hash, and carries nothing of the
    customer in the clear."""
    return uuid.uuid5(_FIRST_MESSAGE_CONTACTS, str(message_event_id)).hex


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
