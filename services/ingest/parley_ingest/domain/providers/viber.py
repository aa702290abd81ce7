"""Viber REST bot API callbacks, signed with X-Viber-Content-Signature (HMAC-SHA256 with the auth token)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_common.channels import AnyChannel, ViberChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    ContactsPart,
    ContentPart,
    Customer,
    DeliveryStatus,
    LocationPart,
    MediaKind,
    MediaPart,
    ProviderError,
    Referral,
    SharedContact,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.model import (
    Batch,
    MalformedPayload,
    Normalised,
    RequestContext,
    from_unix_millis,
    guarded,
    message_event,
    status_event,
)
from parley_ingest.domain.providers.base import as_dict, load_json_object, opt_str
from parley_ingest.domain.signatures import hex_signature_ok

_STATUSES = {"delivered": DeliveryStatus.DELIVERED, "seen": DeliveryStatus.READ, "failed": DeliveryStatus.FAILED}
_SYSTEM_EVENTS = ("subscribed", "unsubscribed", "conversation_started")
_MEDIA = {"picture": MediaKind.IMAGE, "video": MediaKind.VIDEO, "file": MediaKind.FILE}


class ViberPlugin:
    channel_type: ChannelType = ChannelType.VIBER
    content_types: tuple[str, ...] = ("application/json",)
    handshake: bool = False

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, ViberChannel)
        given = headers.get("x-viber-content-signature")
        return any(hex_signature_ok(secret, body, given) for secret in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        assert isinstance(channel, ViberChannel)
        callback = load_json_object(body)
        if not isinstance(callback.get("event"), str):
            raise MalformedPayload("unrecognised_payload", "expected a Viber callback with `event`")
        batch = Batch()
        if callback["event"] != "webhook":  # the set_webhook availability check carries nothing to store
            guarded(batch, callback, lambda c: _callback(as_dict(c), ctx))
        if callback["event"] == "conversation_started" and channel.welcome_message and batch.events:
            batch.reply = welcome(channel)
        return batch


def welcome(channel: ViberChannel) -> dict[str, Any]:
    """The welcome message, answered in the body of the `conversation_started` callback (reference §4.4, §4.8):
    the `send_message` JSON without a receiver — the one message Viber delivers before the user subscribes."""
    assert channel.welcome_message is not None
    sender: dict[str, Any] = {"name": channel.sender_name}
    if channel.sender_avatar:
        sender["avatar"] = channel.sender_avatar
    return {"sender": sender, "type": "text", "text": channel.welcome_message, "tracking_data": "welcome"}


def _callback(callback: dict[str, Any], ctx: RequestContext) -> Normalised:
    event = callback["event"]
    when = from_unix_millis(callback["timestamp"])
    token = opt_str(callback.get("message_token"))
    if event in _STATUSES:
        errors = (ProviderError(code="failed", detail=opt_str(callback.get("desc"))),) if event == "failed" else ()
        return status_event(
            ctx, external_user_id=str(callback["user_id"]), provider_message_id=str(token),
            status=_STATUSES[event], provider_timestamp=when, raw=callback, errors=errors,
            # `seen` fires once for all unread messages: everything before it is read.
            watermark=when if event == "seen" else None,
        )
    user = as_dict(callback.get("sender") or callback.get("user"))
    user_id = opt_str(user.get("id") or callback.get("user_id"))
    if user_id is None:
        raise ValueError(f"{event} callback without a user id")
    customer = Customer(profile_name=opt_str(user.get("name")), language=opt_str(user.get("language")),
                        avatar_url=_web_url(user.get("avatar")))
    dedup = f"{event}:{token or user_id + ':' + str(callback['timestamp'])}"
    common: dict[str, Any] = {
        "external_user_id": user_id, "customer": customer, "provider_timestamp": when, "raw": callback,
        "provider_message_id": token or dedup, "dedup_id": dedup,
    }
    if event == "message":
        return message_event(ctx, parts=_parts(as_dict(callback["message"]), token or dedup), **common)
    if event in _SYSTEM_EVENTS:
        context = opt_str(callback.get("context"))
        referral = Referral(source_type="deep_link", source_id=context) if context else None
        return message_event(ctx, parts=(SystemPart(system_kind=event, text=context),), referral=referral, **common)
    return message_event(ctx, parts=(UnsupportedPart(provider_type=str(event)),), **common)


def _parts(message: dict[str, Any], token: str) -> tuple[ContentPart, ...]:
    kind = str(message.get("type"))
    text = opt_str(message.get("text"))
    if kind == "text":
        return (TextPart(text=text or ""),)
    if kind in _MEDIA:
        return (MediaPart(media_kind=_MEDIA[kind], source="url", reference=str(message["media"]),
                          attachment_id=f"{token}:0", file_name=opt_str(message.get("file_name")),
                          size_bytes=message.get("size"), caption=text),)
    if kind == "sticker":
        media = opt_str(message.get("media"))
        return (MediaPart(media_kind=MediaKind.STICKER, source="url" if media else "provider_id",
                          reference=media or str(message["sticker_id"]), attachment_id=f"{token}:0"),)
    if kind == "location":
        location = as_dict(message["location"])
        return (LocationPart(latitude=float(location["lat"]), longitude=float(location["lon"])),)
    if kind == "contact":
        contact = as_dict(message["contact"])
        phones = (str(contact["phone_number"]),) if contact.get("phone_number") else ()
        return (ContactsPart(contacts=(SharedContact(name=opt_str(contact.get("name")), phones=phones),)),)
    if kind == "url":
        return (TextPart(text=str(message.get("media") or text or "")),)
    return (UnsupportedPart(provider_type=kind),)


def _web_url(value: Any) -> str | None:
    """An avatar is kept only as an http(s) URL: anything else would be a link the console must not follow."""
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 2048:
        return value
    return None
