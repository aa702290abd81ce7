"""May this stored attachment be sent on this channel? (The formats and sizes are the channel catalogue's.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from parley_common.channel_catalogue import AttachmentRule, attachment_rule
from parley_common.events.common import ChannelType
from parley_outbound.domain.validation import InvalidRequest


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What media told us about an attachment (parley.media.events.v1)."""

    mime_type: str
    size_bytes: int
    expires_at: datetime
    expired: bool = False


def check_attachment(channel_type: ChannelType, media: MediaFacts | None, now: datetime) -> AttachmentRule:
    """The rule the attachment is sent under; InvalidRequest when it is unknown, expired, or not accepted."""
    if media is None:
        raise InvalidRequest("media_not_found", "no stored attachment with this media id", "content.media_id")
    if media.expired or now >= media.expires_at:
        raise InvalidRequest("media_expired", "the attachment has expired; upload it again", "content.media_id")
    rule = attachment_rule(channel_type, media.mime_type, media.size_bytes)
    if rule is None:
        raise InvalidRequest("attachment_not_accepted",
                             f"{channel_type.value} does not accept {media.mime_type} of {media.size_bytes} bytes",
                             "content.media_id")
    return rule
