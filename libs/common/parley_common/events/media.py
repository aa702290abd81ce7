"""What media publishes about attachments."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.common import ChannelType
from parley_common.events.envelope import ConversationScoped
from parley_common.events.inbound import MediaPart


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
    # Added (optional, backward compatible).
    media_kind: str | None = Field(default=None, description="image, audio, video or document (from the bytes)")
    has_thumbnail: bool = False
    uploaded_by: str | None = Field(default=None, description="the login that uploaded it (POST /v1/media); an "
                                    "upload has no customer: its external_user_id is `upload:<media_id>`")


class MediaFailed(MediaEvent):
    type: Literal["parley.media.failed"] = "parley.media.failed"
    reason: str
    attempts: int


class MediaPending(MediaEvent):
    """Downloading again: someone asked to retry a failed attachment (`POST /v1/media/{id}/retry`)."""

    type: Literal["parley.media.pending"] = "parley.media.pending"
    reason: Literal["retry"] = "retry"
    requested_by: str | None = Field(default=None, description="login of who asked")


class MediaExpired(MediaEvent):
    type: Literal["parley.media.expired"] = "parley.media.expired"
    file_name: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None


MediaTopicEvent = Annotated[MediaStored | MediaFailed | MediaPending | MediaExpired, Field(discriminator="type")]


class RetryMediaFetch(ConversationScoped):
    """Command from media to itself (parley.media.retries.v1): download this attachment again at `not_before`.

    A failed download never holds up the inbound message: it leaves through this topic with backoff, and
    after the last attempt becomes MediaFailed plus a dead letter with the reason."""

    source = "parley/media"
    type: Literal["parley.media.fetch_retry"] = "parley.media.fetch_retry"
    schema_version: Literal[1] = 1
    media_id: str
    channel_type: ChannelType
    provider_message_id: str
    part: MediaPart
    attempt: int = Field(ge=1, description="attempts already made")
    not_before: AwareDatetime
    received_at: AwareDatetime = Field(description="when the message carrying the attachment arrived")
    last_reason: str | None = None
    last_detail: str | None = None
