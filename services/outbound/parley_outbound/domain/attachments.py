"""Which attachment formats and sizes each channel accepts for sending (reference/channels.md §1.11, §3.6)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from parley_common.events.common import ChannelType
from parley_outbound.domain.validation import InvalidRequest

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MediaRule:
    kind: str  # the provider's media type: image, video, audio, document, sticker
    mime_types: frozenset[str]
    max_bytes: int


_WHATSAPP = (
    MediaRule("image", frozenset({"image/jpeg", "image/png"}), 5 * MB),
    MediaRule("video", frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
    MediaRule("audio", frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    MediaRule("sticker", frozenset({"image/webp"}), 500 * 1024),
    MediaRule("document", frozenset({
        "text/plain", "application/pdf", "application/msword", "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }), 100 * MB),
)
_TELEGRAM = (
    MediaRule("image", frozenset({"image/jpeg", "image/png", "image/webp"}), 10 * MB),
    MediaRule("document", frozenset(), 50 * MB),  # any type as a document
)
_META = (
    MediaRule("image", frozenset({"image/jpeg", "image/png", "image/gif"}), 8 * MB),
    MediaRule("video", frozenset({"video/mp4"}), 25 * MB),
    MediaRule("audio", frozenset({"audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg"}), 25 * MB),
    MediaRule("file", frozenset(), 25 * MB),
)
_VIBER = (
    MediaRule("image", frozenset({"image/jpeg", "image/png"}), 1 * MB),
    MediaRule("file", frozenset(), 50 * MB),
)
_EMAIL = (MediaRule("file", frozenset(), 25 * MB),)

RULES: dict[ChannelType, tuple[MediaRule, ...]] = {
    ChannelType.WHATSAPP: _WHATSAPP, ChannelType.TELEGRAM: _TELEGRAM, ChannelType.MESSENGER: _META,
    ChannelType.INSTAGRAM: _META, ChannelType.VIBER: _VIBER, ChannelType.EMAIL: _EMAIL,
    ChannelType.SANDBOX: _EMAIL,  # the fake takes any file up to 25 MB
}


def media_rule(channel_type: ChannelType, mime_type: str, size_bytes: int) -> MediaRule | None:
    """The rule that accepts this attachment on this channel, or None when the channel refuses it.

    A rule with no MIME types is the channel's catch-all (a generic file/document)."""
    for rule in RULES[channel_type]:
        if mime_type in rule.mime_types:
            return rule if size_bytes <= rule.max_bytes else None
    for rule in RULES[channel_type]:
        if not rule.mime_types and size_bytes <= rule.max_bytes:
            return rule
    return None


def size_limit(channel_type: ChannelType, kind: str) -> int:
    """The most bytes the channel takes for this kind of attachment: what outbound fetches and uploads at most."""
    rules = RULES[channel_type]
    return max((rule.max_bytes for rule in rules if rule.kind == kind), default=max(rule.max_bytes for rule in rules))


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What media told us about an attachment (parley.media.events.v1)."""

    mime_type: str
    size_bytes: int
    expires_at: datetime
    expired: bool = False


def check_attachment(channel_type: ChannelType, media: MediaFacts | None, now: datetime) -> MediaRule:
    """The rule the attachment is sent under; InvalidRequest when it is unknown, expired, or not accepted."""
    if media is None:
        raise InvalidRequest("media_not_found", "no stored attachment with this media id", "content.media_id")
    if media.expired or now >= media.expires_at:
        raise InvalidRequest("media_expired", "the attachment has expired; upload it again", "content.media_id")
    rule = media_rule(channel_type, media.mime_type, media.size_bytes)
    if rule is None:
        raise InvalidRequest("attachment_not_accepted",
                             f"{channel_type.value} does not accept {media.mime_type} of {media.size_bytes} bytes",
                             "content.media_id")
    return rule
