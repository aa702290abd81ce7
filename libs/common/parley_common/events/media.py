"""What media publishes about attachments."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.envelope import ConversationScoped


class MediaEvent(ConversationScoped):
    source = "parley/media"
    schema_version: Literal[1] = 1
    media_id: str
    provider_message_id: str | None = None
    attachment_id: str | None = None


class MediaStored(MediaEvent):
    type: Literal["parley.media.stored"] = "parley.media.stored"
    file_name: str | None = None
    mime_type: str
    size_bytes: int
    sha256: str
    expires_at: AwareDatetime


class MediaFailed(MediaEvent):
    type: Literal["parley.media.failed"] = "parley.media.failed"
    reason: str
    attempts: int


class MediaExpired(MediaEvent):
    type: Literal["parley.media.expired"] = "parley.media.expired"
    file_name: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None


MediaTopicEvent = Annotated[MediaStored | MediaFailed | MediaExpired, Field(discriminator="type")]
