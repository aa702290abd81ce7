"""The envelope every event and command on Kafka carries."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from parley_common.ids import ConversationKey


class Frozen(BaseModel):
    """Base of every payload part: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Envelope(Frozen):
    """Common attributes of every event and command.

    Subclasses set `type` as a `Literal` field (the CloudEvents `type`, and the discriminator when a
    topic carries several kinds) and `schema_version` as a `Literal` of their version.
    """

    # Names the producing service in the CloudEvents `source` attribute (e.g. "parley/ingest").
    source: ClassVar[str] = "parley"

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime
    tenant_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(min_length=1, max_length=128)
    schema_version: int = 1

    def partition_key(self) -> bytes:
        """Kafka message key; events about a conversation override this with the conversation key."""
        return self.tenant_id.encode()


class ConversationScoped(Envelope):
    """An event about one customer on one channel: keyed so that customer's events stay in order."""

    channel_id: str = Field(min_length=1, max_length=128)
    external_user_id: str = Field(min_length=1, max_length=512)

    @property
    def conversation_key(self) -> ConversationKey:
        return ConversationKey(self.tenant_id, self.channel_id, self.external_user_id)

    def partition_key(self) -> bytes:
        return self.conversation_key.encode()
