"""Messenger / Instagram `message` objects → content parts and referrals."""

from __future__ import annotations

from typing import Any

from parley_common.events.inbound import (
    ContentPart,
    MediaKind,
    MediaPart,
    Referral,
    ReplyPart,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.providers.base import as_dict, as_list, opt_str

_MEDIA_KINDS = {
    "image": MediaKind.IMAGE,
    "audio": MediaKind.AUDIO,
    "video": MediaKind.VIDEO,
    "file": MediaKind.FILE,
    "sticker": MediaKind.STICKER,
}


def message_parts(message: dict[str, Any]) -> tuple[ContentPart, ...]:
    mid = str(message["mid"])
    if message.get("is_deleted"):
        return (SystemPart(system_kind="message_deleted"),)
    parts: list[ContentPart] = []
    quick_reply = message.get("quick_reply")
    if isinstance(quick_reply, dict):
        parts.append(ReplyPart(reply_kind="quick_reply", payload=opt_str(quick_reply.get("payload")),
                               title=opt_str(message.get("text"))))
    elif message.get("text") is not None:
        parts.append(TextPart(text=str(message["text"])))
    for index, attachment in enumerate(as_list(message.get("attachments"))):
        parts.append(_attachment(as_dict(attachment), f"{mid}:{index}"))
    if message.get("is_unsupported") or not parts:
        parts.append(UnsupportedPart(provider_type="message", description="no text or attachment we understand"))
    return tuple(parts)


def _attachment(attachment: dict[str, Any], attachment_id: str) -> ContentPart:
    kind = str(attachment.get("type") or "unknown")
    payload = as_dict(attachment.get("payload"))
    url = opt_str(payload.get("url"))
    if kind in _MEDIA_KINDS and url:
        return MediaPart(media_kind=_MEDIA_KINDS[kind], source="url", reference=url, attachment_id=attachment_id,
                         file_name=opt_str(payload.get("name") or payload.get("title")))
    # Shares, reels, story mentions, fallbacks: we keep what they are; the event's raw keeps the rest.
    description = opt_str(payload.get("title") or payload.get("url"))
    return UnsupportedPart(provider_type=f"attachment.{kind}", description=description)


def referral_from(referral: Any) -> Referral | None:
    """m.me / ig.me links, Click-to-Messenger ads (source ADS), plugins."""
    if not isinstance(referral, dict):
        return None
    ads = as_dict(referral.get("ads_context_data"))
    source = opt_str(referral.get("source"))
    return Referral(
        source_type=source,
        source_id=opt_str(referral.get("ad_id") or referral.get("ref")),
        headline=opt_str(ads.get("ad_title")),
        free_entry_point=source == "ADS",
    )
