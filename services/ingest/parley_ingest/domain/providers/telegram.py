"""Telegram Bot API webhooks: one `Update` per request, secret in X-Telegram-Bot-Api-Secret-Token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_common.channels import AnyChannel, TelegramChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    ContactsPart,
    ContentPart,
    Customer,
    LocationPart,
    MediaKind,
    MediaPart,
    ReactionPart,
    Referral,
    ReplyPart,
    SharedContact,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.model import (
    Batch,
    Normalised,
    Rejected,
    RequestContext,
    from_unix_seconds,
    guarded,
    message_event,
    raw_bytes,
)
from parley_ingest.domain.providers.base import as_dict, as_list, load_json_object, opt_str
from parley_ingest.domain.signatures import secret_matches

MESSAGE_KEYS = ("message", "edited_message", "business_message", "edited_business_message")
_MEDIA_KEYS = {
    "document": MediaKind.DOCUMENT, "audio": MediaKind.AUDIO, "voice": MediaKind.VOICE, "video": MediaKind.VIDEO,
    "video_note": MediaKind.VIDEO, "animation": MediaKind.VIDEO, "sticker": MediaKind.STICKER,
}
_START = "/start"


class TelegramPlugin:
    channel_type: ChannelType = ChannelType.TELEGRAM
    content_types: tuple[str, ...] = ("application/json",)
    handshake: bool = False

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, TelegramChannel)
        given = headers.get("x-telegram-bot-api-secret-token")
        return any(secret_matches(expected, given) for expected in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        update = load_json_object(body)
        batch = Batch()
        guarded(batch, update, lambda u: _update(as_dict(u), ctx))
        return batch


def _update(update: dict[str, Any], ctx: RequestContext) -> Batch | Normalised:
    dedup = f"update:{update['update_id']}"
    for key in MESSAGE_KEYS:
        if isinstance(update.get(key), dict):
            return _message(update[key], update, ctx, dedup, edited=key.startswith("edited"))
    if isinstance(update.get("callback_query"), dict):
        return _callback(update["callback_query"], update, ctx, dedup)
    if isinstance(update.get("message_reaction"), dict):
        return _reaction(update["message_reaction"], update, ctx, dedup)
    if isinstance(update.get("my_chat_member"), dict):
        blocked = _bot_blocking(update["my_chat_member"], update, ctx, dedup)
        if blocked is not None:
            return blocked
    kind = next((key for key in update if key != "update_id"), "unknown")
    item = as_dict(update.get(kind))
    user = as_dict(item.get("from") or item.get("chat") or as_dict(item.get("message")).get("chat"))
    if user.get("id") is None:
        return Batch(rejected=[Rejected("unhandled_provider_event", f"update type {kind}", raw_bytes(update))])
    return message_event(
        ctx, external_user_id=str(user["id"]), customer=_customer(user), provider_message_id=dedup,
        provider_timestamp=from_unix_seconds(item.get("date") or ctx.received_at.timestamp()),
        parts=(UnsupportedPart(provider_type=kind),), raw=update, dedup_id=dedup,
    )


# A private chat's member status of the bot: the user blocked it (kicked) or started it again (member).
_BOT_STATUS = {"kicked": "bot_blocked", "member": "bot_unblocked"}


def _bot_blocking(change: dict[str, Any], update: dict[str, Any], ctx: RequestContext,
                  dedup: str) -> Normalised | None:
    """`my_chat_member` in a private chat (reference §3.3, §3.7): the user blocked or unblocked the bot; sends to
    a user who blocked it fail with 403, so outbound refuses them first."""
    chat = as_dict(change.get("chat"))
    status = _BOT_STATUS.get(str(as_dict(change.get("new_chat_member")).get("status")))
    if chat.get("type") != "private" or status is None:
        return None
    return message_event(
        ctx, external_user_id=str(chat["id"]), customer=_customer(as_dict(change.get("from")) or chat),
        provider_message_id=dedup, provider_timestamp=from_unix_seconds(change["date"]),
        parts=(SystemPart(system_kind=status),), raw=update, dedup_id=dedup,
    )


def _reaction(change: dict[str, Any], update: dict[str, Any], ctx: RequestContext, dedup: str) -> Normalised:
    """`message_reaction` (reference §3.3): the user's reactions to a message, all of them, after the change;
    the latest emoji is theirs (None: they took every reaction back); a custom-emoji or paid reaction alone,
    which has no standard emoji, shows as ★."""
    chat = as_dict(change["chat"])
    emojis = [str(r["emoji"]) for r in map(as_dict, as_list(change.get("new_reaction"))) if r.get("type") == "emoji"]
    reactions = as_list(change.get("new_reaction"))
    emoji = emojis[-1] if emojis else ("\N{BLACK STAR}" if reactions else None)
    return message_event(
        ctx, external_user_id=str(chat["id"]), customer=_customer(as_dict(change.get("user")) or chat),
        provider_message_id=dedup, provider_timestamp=from_unix_seconds(change["date"]), raw=update, dedup_id=dedup,
        parts=(ReactionPart(target_provider_message_id=f"{chat['id']}:{change['message_id']}", emoji=emoji),),
    )


def _customer(user: dict[str, Any]) -> Customer:
    name = " ".join(str(user[key]) for key in ("first_name", "last_name") if user.get(key)) or None
    return Customer(username=opt_str(user.get("username")), profile_name=name,
                    language=opt_str(user.get("language_code")))


def _message(message: dict[str, Any], update: dict[str, Any], ctx: RequestContext, dedup: str,
             *, edited: bool) -> Normalised:
    chat = as_dict(message["chat"])  # the conversation: a private chat's id is the user's id
    reply_to = as_dict(message.get("reply_to_message")).get("message_id")
    when = message.get("edit_date") if edited and message.get("edit_date") else message["date"]
    return message_event(
        ctx,
        external_user_id=str(chat["id"]),
        customer=_customer(as_dict(message.get("from")) or chat),
        provider_message_id=f"{chat['id']}:{message['message_id']}",
        provider_timestamp=from_unix_seconds(when),
        parts=_parts(message),
        raw=update,
        dedup_id=dedup,
        edited=edited,
        forwarded="forward_origin" in message or "forward_from" in message,
        group_id=opt_str(message.get("media_group_id")),
        reply_to_provider_message_id=f"{chat['id']}:{reply_to}" if reply_to is not None else None,
        referral=_start_parameter(message.get("text")),
    )


def _callback(query: dict[str, Any], update: dict[str, Any], ctx: RequestContext, dedup: str) -> Normalised:
    user = as_dict(query["from"])
    message = as_dict(query.get("message"))
    chat_id = as_dict(message.get("chat")).get("id", user["id"])
    return message_event(
        ctx,
        external_user_id=str(chat_id),
        customer=_customer(user),
        provider_message_id=f"callback:{query['id']}",
        provider_timestamp=ctx.received_at,  # a callback query carries no time of its own
        parts=(ReplyPart(reply_kind="callback", payload=opt_str(query.get("data"))),),
        raw=update,
        dedup_id=dedup,
        reply_to_provider_message_id=f"{chat_id}:{message['message_id']}" if message.get("message_id") else None,
    )


def _parts(message: dict[str, Any]) -> tuple[ContentPart, ...]:
    caption = opt_str(message.get("caption"))
    attachment_id = f"{as_dict(message.get('chat')).get('id')}:{message.get('message_id')}:0"
    parts: list[ContentPart] = []
    if message.get("text") is not None:
        parts.append(TextPart(text=str(message["text"])))
    photos = [as_dict(photo) for photo in as_list(message.get("photo"))]
    if photos:
        largest = max(photos, key=lambda p: (int(p.get("width", 0)) * int(p.get("height", 0)), p.get("file_size", 0)))
        parts.append(_media(largest, MediaKind.IMAGE, attachment_id, caption))
    else:
        key = next((key for key in _MEDIA_KEYS if isinstance(message.get(key), dict)), None)
        if key is not None:
            parts.append(_media(message[key], _MEDIA_KEYS[key], attachment_id, caption))
    parts.extend(_structured(message))
    if not parts:
        kind = next((k for k in message if k not in {"message_id", "from", "chat", "date"}), "unknown")
        parts.append(UnsupportedPart(provider_type=kind))
    return tuple(parts)


def _media(file: dict[str, Any], kind: MediaKind, attachment_id: str, caption: str | None) -> MediaPart:
    return MediaPart(
        media_kind=kind, source="provider_id", reference=str(file["file_id"]), attachment_id=attachment_id,
        mime_type=opt_str(file.get("mime_type")), file_name=opt_str(file.get("file_name")),
        size_bytes=file.get("file_size"), caption=caption,
    )


def _structured(message: dict[str, Any]) -> list[ContentPart]:
    parts: list[ContentPart] = []
    venue = as_dict(message.get("venue"))
    location = as_dict(message.get("location") or venue.get("location"))
    if location:
        parts.append(LocationPart(latitude=float(location["latitude"]), longitude=float(location["longitude"]),
                                  name=opt_str(venue.get("title")), address=opt_str(venue.get("address"))))
    contact = as_dict(message.get("contact"))
    if contact:
        name = " ".join(str(contact[k]) for k in ("first_name", "last_name") if contact.get(k)) or None
        phones = (str(contact["phone_number"]),) if contact.get("phone_number") else ()
        parts.append(ContactsPart(contacts=(SharedContact(name=name, phones=phones),)))
    return parts


def _start_parameter(text: Any) -> Referral | None:
    """`/start <parameter>` from a t.me deep link says where the customer came from."""
    if not isinstance(text, str) or not text.startswith(_START + " "):
        return None
    return Referral(source_type="deep_link", source_id=text[len(_START) + 1:].strip() or None)
