"""WhatsApp Cloud API message content → normalised content parts (one per message type)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from parley_common.events.inbound import (
    ContactsPart,
    ContentPart,
    FlowReplyPart,
    LocationPart,
    MediaKind,
    MediaPart,
    OrderPart,
    ReactionPart,
    Referral,
    ReplyPart,
    SharedContact,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.providers.base import as_dict, as_list, opt_str

_MEDIA_KINDS = {
    "image": MediaKind.IMAGE,
    "video": MediaKind.VIDEO,
    "audio": MediaKind.AUDIO,
    "document": MediaKind.DOCUMENT,
    "sticker": MediaKind.STICKER,
}


def parts_of(message: dict[str, Any]) -> tuple[ContentPart, ...]:
    kind = str(message.get("type") or "unknown")
    if kind in _MEDIA_KINDS:
        return (_media(message, kind),)
    parse = _BY_TYPE.get(kind)
    if parse is None:
        return (UnsupportedPart(provider_type=kind),)
    return (parse(as_dict(message.get(kind)), message),)


def revision_of(message: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """An `edit` or `revoke` (coexistence: the customer changed or deleted an earlier message) names the message it
    changes: (that message's id, the content to show for it — the edited message, or the deletion). Any other
    message: (None, itself)."""
    kind = message.get("type")
    if kind not in ("edit", "revoke"):
        return None, message
    change = as_dict(message.get(kind))
    original = str(change["original_message_id"])
    if kind == "revoke":
        return original, {"id": original, "type": "system", "system": {"type": "revoked"}}
    return original, {**as_dict(change.get("message")), "id": original}


def _media(message: dict[str, Any], kind: str) -> MediaPart:
    media = as_dict(message.get(kind))
    media_kind = MediaKind.VOICE if kind == "audio" and media.get("voice") else _MEDIA_KINDS[kind]
    return MediaPart(
        media_kind=media_kind,
        source="provider_id",
        reference=str(media["id"]),
        attachment_id=f"{message['id']}:0",
        mime_type=opt_str(media.get("mime_type")),
        file_name=opt_str(media.get("filename")),
        sha256=opt_str(media.get("sha256")),
        caption=opt_str(media.get("caption")),
    )


def _text(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    return TextPart(text=str(content.get("body", "")))


def _location(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    return LocationPart(
        latitude=float(content["latitude"]), longitude=float(content["longitude"]),
        name=opt_str(content.get("name")), address=opt_str(content.get("address")), url=opt_str(content.get("url")),
    )


def _contacts(_: dict[str, Any], message: dict[str, Any]) -> ContentPart:
    shared = []
    for contact in as_list(message.get("contacts")):
        name = as_dict(as_dict(contact).get("name"))
        shared.append(SharedContact(
            name=opt_str(name.get("formatted_name") or name.get("first_name")),
            phones=tuple(str(p["phone"]) for p in as_list(contact.get("phones")) if as_dict(p).get("phone")),
            emails=tuple(str(e["email"]) for e in as_list(contact.get("emails")) if as_dict(e).get("email")),
        ))
    return ContactsPart(contacts=tuple(shared))


def _interactive(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    kind = content.get("type")
    if kind == "button_reply":
        reply = as_dict(content.get("button_reply"))
        return ReplyPart(reply_kind="button", payload=opt_str(reply.get("id")), title=opt_str(reply.get("title")))
    if kind == "list_reply":
        reply = as_dict(content.get("list_reply"))
        return ReplyPart(reply_kind="list", payload=opt_str(reply.get("id")), title=opt_str(reply.get("title")),
                         description=opt_str(reply.get("description")))
    if kind == "nfm_reply":
        reply = as_dict(content.get("nfm_reply"))
        return FlowReplyPart(name=opt_str(reply.get("name")), body=opt_str(reply.get("body")),
                             response=_json_object(reply.get("response_json")))
    return UnsupportedPart(provider_type=f"interactive.{kind}")


def _json_object(text: Any) -> dict[str, Any] | None:
    """`response_json` is a JSON string (reference §1.6); anything else is left to the event's raw."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _button(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    return ReplyPart(reply_kind="button", payload=opt_str(content.get("payload")), title=opt_str(content.get("text")))


def _reaction(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    return ReactionPart(target_provider_message_id=str(content["message_id"]), emoji=opt_str(content.get("emoji")))


def _order(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    items = tuple(as_dict(item) for item in as_list(content.get("product_items")))
    return OrderPart(catalog_id=opt_str(content.get("catalog_id")), items=items, text=opt_str(content.get("text")))


def _system(content: dict[str, Any], _: dict[str, Any]) -> ContentPart:
    return SystemPart(system_kind=str(content.get("type") or "system"), text=opt_str(content.get("body")))


def _unsupported(content: dict[str, Any], message: dict[str, Any]) -> ContentPart:
    errors = [as_dict(error) for error in as_list(message.get("errors"))]
    description = errors[0].get("title") or errors[0].get("message") if errors else None
    return UnsupportedPart(provider_type=str(content.get("type") or "unsupported"), description=opt_str(description))


_BY_TYPE: dict[str, Callable[[dict[str, Any], dict[str, Any]], ContentPart]] = {
    "text": _text,
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
    "unsupported": _unsupported,
}


def referral_of(message: dict[str, Any]) -> Referral | None:
    """Click-to-WhatsApp ad referral: the 72 h free entry point (pricing only, never the window)."""
    referral = message.get("referral")
    if not isinstance(referral, dict):
        return None
    return Referral(
        source_type=opt_str(referral.get("source_type")),
        source_id=opt_str(referral.get("source_id")),
        source_url=opt_str(referral.get("source_url")),
        headline=opt_str(referral.get("headline")),
        ctwa_clid=opt_str(referral.get("ctwa_clid")),
        free_entry_point=True,
    )
