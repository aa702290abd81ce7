"""Messenger (`object: page`) and Instagram (`object: instagram`) webhooks: `entry[].messaging[]` events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from parley_common.channels import AnyChannel, InstagramChannel, MessengerChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import Customer, DeliveryStatus, ReactionPart, ReplyPart, SystemPart, TextPart
from parley_common.events.inbound import UnsupportedPart as Unsupported
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
from parley_ingest.domain.providers.base import as_dict, as_list, load_json_object, opt_str
from parley_ingest.domain.providers.meta_messaging_parts import message_parts, referral_from
from parley_ingest.domain.signatures import meta_signature_ok


class MetaMessagingPlugin:
    content_types: tuple[str, ...] = ("application/json",)
    handshake: bool = True

    def __init__(self, channel_type: ChannelType, webhook_object: str) -> None:
        self.channel_type = channel_type
        self._object = webhook_object

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, MessengerChannel | InstagramChannel)
        given = headers.get("x-hub-signature-256")
        return any(meta_signature_ok(secret, body, given) for secret in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        payload = load_json_object(body)
        if payload.get("object") != self._object or not isinstance(payload.get("entry"), list):
            raise MalformedPayload("unrecognised_payload", f"expected object={self._object} with entry[]")
        batch = Batch()
        for entry in map(as_dict, payload["entry"]):
            # `standby` carries the same events while another app owns the thread (handover protocol).
            for event in [*as_list(entry.get("messaging")), *as_list(entry.get("standby"))]:
                guarded(batch, event, lambda e: _event(as_dict(e), ctx))
        return batch


def _user_id(party: Any) -> str:
    party = as_dict(party)
    if party.get("id") is not None:
        return str(party["id"])
    if party.get("user_ref") is not None:
        return f"user_ref:{party['user_ref']}"
    raise ValueError("event without sender/recipient id")


def _event(event: dict[str, Any], ctx: RequestContext) -> Iterable[Normalised]:
    sender = _user_id(event.get("sender"))
    if "message" in event:
        return [_message(event, ctx)]
    if "delivery" in event or "read" in event:
        return _statuses(event, sender, ctx)
    when = from_unix_millis(event.get("timestamp") or 0)
    common: dict[str, Any] = {
        "external_user_id": sender, "customer": Customer(), "provider_timestamp": when, "raw": event,
    }
    if "postback" in event:
        postback = as_dict(event["postback"])
        reply = ReplyPart(reply_kind="postback", payload=opt_str(postback.get("payload")),
                          title=opt_str(postback.get("title")))
        mid = opt_str(postback.get("mid")) or f"postback:{sender}:{event.get('timestamp')}"
        return [message_event(ctx, provider_message_id=mid, parts=(reply,),
                              referral=referral_from(postback.get("referral")), **common)]
    if "referral" in event:
        referral = referral_from(event["referral"])
        part = SystemPart(system_kind="referral", text=opt_str(as_dict(event["referral"]).get("ref")))
        return [message_event(ctx, provider_message_id=f"referral:{sender}:{event.get('timestamp')}",
                              parts=(part,), referral=referral, **common)]
    if "reaction" in event:
        reaction = as_dict(event["reaction"])
        emoji = opt_str(reaction.get("emoji")) if reaction.get("action") != "unreact" else None
        mid = f"reaction:{reaction['mid']}:{reaction.get('action')}:{event.get('timestamp')}"
        reaction_part = ReactionPart(target_provider_message_id=str(reaction["mid"]), emoji=emoji)
        return [message_event(ctx, provider_message_id=mid, parts=(reaction_part,), **common)]
    if "message_edit" in event:
        edit = as_dict(event["message_edit"])
        return [message_event(ctx, provider_message_id=str(edit["mid"]), parts=(TextPart(text=str(edit["text"])),),
                              edited=True, dedup_id=f"edit:{edit['mid']}:{edit.get('num_edit')}", **common)]
    kind = next((key for key in event if key not in {"sender", "recipient", "timestamp"}), "unknown")
    return [message_event(ctx, provider_message_id=f"{kind}:{sender}:{event.get('timestamp')}",
                          parts=(Unsupported(provider_type=kind),), **common)]


def _message(event: dict[str, Any], ctx: RequestContext) -> Normalised:
    message = as_dict(event["message"])
    echo = bool(message.get("is_echo"))
    # On an echo the business is the sender: the customer is the recipient.
    customer_id = _user_id(event.get("recipient") if echo else event.get("sender"))
    reply_to = as_dict(message.get("reply_to"))
    return message_event(
        ctx,
        external_user_id=customer_id,
        customer=Customer(),
        provider_message_id=str(message["mid"]),
        # a deletion names the message it deletes by that message's own mid: de-duplicated apart from it
        dedup_id=f"deleted:{message['mid']}" if message.get("is_deleted") else None,
        provider_timestamp=from_unix_millis(event["timestamp"]),
        parts=message_parts(message),
        raw=event,
        direction="echo" if echo else "inbound",
        reply_to_provider_message_id=opt_str(reply_to.get("mid")),
        referral=referral_from(message.get("referral")),
    )


def _statuses(event: dict[str, Any], customer_id: str, ctx: RequestContext) -> list[Normalised]:
    """Messenger delivery/read carry a watermark (and maybe mids); Instagram `read` carries one mid."""
    status = DeliveryStatus.DELIVERED if "delivery" in event else DeliveryStatus.READ
    body = as_dict(event.get("delivery") or event.get("read"))
    watermark = from_unix_millis(body["watermark"]) if body.get("watermark") else None
    when = from_unix_millis(event["timestamp"]) if event.get("timestamp") else watermark
    if when is None:
        raise ValueError("status without timestamp or watermark")
    mids = [str(mid) for mid in as_list(body.get("mids"))] or ([str(body["mid"])] if body.get("mid") else [])
    if not mids:
        mids = [f"watermark:{body['watermark']}"]
    return [
        status_event(ctx, external_user_id=customer_id, provider_message_id=mid, status=status,
                     provider_timestamp=when, raw=event, watermark=watermark)
        for mid in mids
    ]
