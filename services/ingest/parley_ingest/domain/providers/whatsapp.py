"""WhatsApp Cloud API webhooks: X-Hub-Signature-256, entries → changes → messages / statuses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from parley_common.channels import AnyChannel, WhatsAppChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    Customer,
    DeliveryStatus,
    MarketingPreferenceChanged,
    Pricing,
    ProviderError,
)
from parley_common.phones import InvalidPhoneNumber, to_e164
from parley_ingest.domain.identities import BSUID, PHONE, IdentityClaim, claim, identifier
from parley_ingest.domain.model import (
    Batch,
    IdentityLink,
    MalformedPayload,
    Normalised,
    Rejected,
    RequestContext,
    envelope_fields,
    from_unix_seconds,
    guarded,
    message_event,
    raw_bytes,
    status_event,
)
from parley_ingest.domain.providers.base import as_dict, as_list, load_json_object, opt_str
from parley_ingest.domain.providers.whatsapp_business import BUSINESS_FIELDS, business_change
from parley_ingest.domain.providers.whatsapp_parts import parts_of, referral_of, revision_of
from parley_ingest.domain.signatures import meta_signature_ok

OBJECT = "whatsapp_business_account"
_WA_ID = re.compile(r"[1-9][0-9]{7,14}")


class WhatsAppPlugin:
    """One Meta app has one webhook URL for all its numbers: a change for another number of the same app
    (same app secret, so the signature vouches for it) is routed to that number's channel."""

    channel_type: ChannelType = ChannelType.WHATSAPP
    content_types: tuple[str, ...] = ("application/json",)
    handshake: bool = True

    def __init__(self, numbers: Mapping[str, WhatsAppChannel] | None = None) -> None:
        self._numbers = dict(numbers or {})  # phone_number_id -> channel

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, WhatsAppChannel)
        given = headers.get("x-hub-signature-256")
        return any(meta_signature_ok(secret, body, given) for secret in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        assert isinstance(channel, WhatsAppChannel)
        payload = load_json_object(body)
        if payload.get("object") != OBJECT or not isinstance(payload.get("entry"), list):
            raise MalformedPayload("unrecognised_payload", f"expected object={OBJECT} with entry[]")
        batch = Batch()
        for entry in map(as_dict, payload["entry"]):
            for change in map(as_dict, as_list(entry.get("changes"))):
                if change.get("field") in BUSINESS_FIELDS:
                    for owner in self._account_channels(channel, entry):
                        routed = replace(ctx, tenant_id=owner.tenant_id, channel_id=owner.id)
                        guarded(batch, change, lambda c, e=entry, r=routed: business_change(e, c, r))
                    continue
                target = self._target(channel, change)
                if target is None:
                    number = as_dict(as_dict(change.get("value")).get("metadata")).get("phone_number_id")
                    batch.rejected.append(Rejected("phone_number_mismatch", f"phone_number_id={number}",
                                                   raw_bytes(change)))
                    continue
                routed = ctx if target is channel else replace(ctx, tenant_id=target.tenant_id, channel_id=target.id)
                batch.extend(_change(change, routed))
        return batch

    def _account_channels(self, channel: WhatsAppChannel, entry: dict[str, Any]) -> list[WhatsAppChannel]:
        """The channels a business-side change concerns: this one, and every number of the same Meta app whose
        configured `waba_id` is the entry's account (templates and account health are per account)."""
        account = str(entry.get("id"))
        secret = channel.app_secret.get_secret_value()
        siblings = [number for number in self._numbers.values() if number.id != channel.id
                    and number.waba_id == account and number.app_secret.get_secret_value() == secret]
        return [channel, *siblings]

    def _target(self, channel: WhatsAppChannel, change: dict[str, Any]) -> WhatsAppChannel | None:
        number = as_dict(as_dict(change.get("value")).get("metadata")).get("phone_number_id")
        if number is None or str(number) == channel.phone_number_id:
            return channel
        sibling = self._numbers.get(str(number))
        if sibling is None or sibling.app_secret.get_secret_value() != channel.app_secret.get_secret_value():
            return None
        return sibling


def _change(change: dict[str, Any], ctx: RequestContext) -> Batch:
    batch = Batch()
    value = as_dict(change.get("value"))
    if change.get("field") == "user_id_update":
        updates = _id_updates(value)
        batch.links.extend(IdentityLink(ctx.tenant_id, ctx.channel_id, update) for update in updates)
        if not updates:
            batch.rejected.append(Rejected("unrecognised_payload", "user_id_update without user_id.previous/current",
                                           raw_bytes(change)))
        return batch
    if change.get("field") == "user_preferences":
        contacts = [as_dict(contact) for contact in as_list(value.get("contacts"))]
        for item in as_list(value.get("user_preferences")):
            guarded(batch, item, lambda i: _preference(as_dict(i), contacts, ctx))
        return batch
    if change.get("field") != "messages":
        # Template, account and quality updates are not conversation events: kept on the DLQ, not lost.
        batch.rejected.append(Rejected("unhandled_provider_event", f"field={change.get('field')}", raw_bytes(change)))
        return batch
    contacts = [as_dict(contact) for contact in as_list(value.get("contacts"))]
    for message in as_list(value.get("messages")):
        guarded(batch, message, lambda m: _message(as_dict(m), contacts, ctx))
    for status in as_list(value.get("statuses")):
        guarded(batch, status, lambda s: _status(as_dict(s), ctx))
    if value.get("errors"):
        batch.rejected.append(Rejected("provider_error", "value.errors", raw_bytes(value["errors"])))
    return batch


def _contact_for(message: dict[str, Any], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    for contact in contacts:
        if (contact.get("wa_id") and contact.get("wa_id") == message.get("from")) or (
            contact.get("user_id") and contact.get("user_id") == message.get("from_user_id")
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _phone(wa_id: str | None) -> str | None:
    return _e164(wa_id) if wa_id else None


@lru_cache(maxsize=65536)
def _e164(wa_id: str) -> str | None:
    """wa_id is the number in international form without '+' (reference §1.5): that is E.164 once prefixed.
    Anything else goes through the full parser (costly, hence the cache)."""
    if _WA_ID.fullmatch(wa_id):
        return "+" + wa_id
    try:
        return to_e164(wa_id)
    except InvalidPhoneNumber:
        return None


def _message(message: dict[str, Any], contacts: list[dict[str, Any]], ctx: RequestContext) -> Normalised:
    contact = _contact_for(message, contacts)
    profile = as_dict(contact.get("profile"))
    bsuid = opt_str(message.get("from_user_id") or contact.get("user_id"))
    wa_id = opt_str(message.get("from") or contact.get("wa_id"))
    external = bsuid or wa_id  # never the phone alone when the business-scoped id is known
    if external is None:
        raise ValueError("message without from / from_user_id")
    changed, content = revision_of(message)
    context = as_dict(content.get("context"))
    forwarded = bool(context.get("forwarded") or context.get("frequently_forwarded"))
    return message_event(
        ctx,
        # Not the username: it always comes with a BSUID, and a released username may later name someone else.
        identity=claim(external, identifier(BSUID, bsuid), identifier(PHONE, wa_id), *_changed_identifiers(message)),
        external_user_id=external,
        customer=Customer(
            phone_e164=_phone(wa_id), wa_id=wa_id, business_scoped_user_id=bsuid,
            username=opt_str(profile.get("username")), profile_name=opt_str(profile.get("name")),
        ),
        provider_message_id=changed or str(message["id"]),
        dedup_id=f"{message['type']}:{message['id']}" if changed else None,
        edited=message.get("type") == "edit",
        provider_timestamp=from_unix_seconds(message["timestamp"]),
        parts=parts_of(content),
        raw=message,
        reply_to_provider_message_id=None if forwarded else opt_str(context.get("id")),
        forwarded=forwarded,
        referral=referral_of(message),
    )


def _changed_identifiers(message: dict[str, Any]) -> tuple[str | None, ...]:
    """A system message announcing a new phone number or BSUID names the old ids (the sender) and the new ones:
    the new ids join the customer's existing key (reference §1.5)."""
    system = as_dict(message.get("system"))
    if message.get("type") != "system" or not system:
        return ()
    return (identifier(BSUID, opt_str(system.get("previous_user_id"))), identifier(PHONE, opt_str(system.get("wa_id"))),
            identifier(BSUID, opt_str(system.get("user_id"))))


def _id_updates(value: dict[str, Any]) -> list[IdentityClaim]:
    """`user_id_update`: a customer's BSUID changed (`user_id.previous` → `user_id.current`, reference §1.5); the
    items are read from `value.user_id_update[]` or `value` itself, beside the customer's `wa_id` if given."""
    items = [as_dict(item) for item in as_list(value.get("user_id_update"))] or [value]
    claims = []
    for item in items:
        ids = as_dict(item.get("user_id"))
        previous, current = opt_str(ids.get("previous")), opt_str(ids.get("current"))
        if previous and current:
            claims.append(claim(current, identifier(BSUID, previous), identifier(BSUID, current),
                                identifier(PHONE, opt_str(item.get("wa_id")))))
    return claims


def _preference(item: dict[str, Any], contacts: list[dict[str, Any]], ctx: RequestContext) -> Normalised:
    """`user_preferences`: the customer stopped (`stop`) or resumed (`resume`) marketing messages (reference §1.5)."""
    choice = item.get("value")
    if choice not in ("stop", "resume"):
        raise ValueError(f"user_preferences value {choice!r}")
    wa_id = opt_str(item.get("wa_id"))
    contact = _contact_for({"from": wa_id}, contacts) if wa_id else (contacts[0] if len(contacts) == 1 else {})
    bsuid = opt_str(item.get("user_id") or contact.get("user_id"))
    external = bsuid or wa_id
    if external is None:
        raise ValueError("user_preferences item without wa_id / user_id")
    category = str(item.get("category") or "marketing_messages")
    dedup = f"{external}:{category}:{choice}:{item.get('timestamp')}"
    event = MarketingPreferenceChanged(
        **envelope_fields(ctx, "preference", dedup, external), channel_type=ctx.channel_type,
        opted_out=choice == "stop", category=category, detail=opt_str(item.get("detail")),
        provider_timestamp=from_unix_seconds(item["timestamp"]),
    )
    return Normalised(event, "preference", dedup, claim(external, identifier(BSUID, bsuid), identifier(PHONE, wa_id)))


def _status(status: dict[str, Any], ctx: RequestContext) -> Normalised:
    bsuid, wa_id = opt_str(status.get("recipient_user_id")), opt_str(status.get("recipient_id"))
    # Statuses answer our sends: the address we wrote to (the phone, when the status names it) keys a customer
    # heard of here for the first time, so a conversation opened by phone keeps its key.
    external = wa_id or bsuid
    if external is None:
        raise ValueError("status without recipient_id / recipient_user_id")
    errors = tuple(
        ProviderError(
            code=str(error.get("code")), title=opt_str(error.get("title")),
            detail=opt_str(as_dict(error.get("error_data")).get("details") or error.get("message")),
        )
        for error in map(as_dict, as_list(status.get("errors")))
    )
    return status_event(
        ctx,
        identity=claim(external, identifier(BSUID, bsuid), identifier(PHONE, wa_id)),
        external_user_id=external,
        provider_message_id=str(status["id"]),
        status=DeliveryStatus(status["status"]),
        provider_timestamp=from_unix_seconds(status["timestamp"]),
        raw=status,
        errors=errors,
        pricing=_pricing(status),
    )


def _pricing(status: dict[str, Any]) -> Pricing | None:
    pricing, conversation = as_dict(status.get("pricing")), as_dict(status.get("conversation"))
    if not pricing and not conversation:
        return None
    expires = conversation.get("expiration_timestamp")
    return Pricing(
        category=opt_str(pricing.get("category")),
        billable=pricing.get("billable") if isinstance(pricing.get("billable"), bool) else None,
        pricing_model=opt_str(pricing.get("pricing_model")),
        pricing_type=opt_str(pricing.get("type")),
        conversation_id=opt_str(conversation.get("id")),
        conversation_origin=opt_str(as_dict(conversation.get("origin")).get("type")),
        conversation_expires_at=from_unix_seconds(expires) if expires else None,
    )
