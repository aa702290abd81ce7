"""What a customer message does to contacts: the card a first message creates, and the platform-name refresh."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from parley_common.events.inbound import MessageReceived, SystemPart
from parley_common.phones import InvalidPhoneNumber, to_e164
from parley_contacts.domain.card import Card, activity_key, identity, new_card, search_keys

# Events this service derives from an inbound event get ids derived from its id: a redelivered message
# republishes the very same event ids, so consumers that de-duplicate on event_id see it once.
DERIVED_NAMESPACE = uuid.UUID("5b8f3c1e-2f7a-4d0e-9a64-6c1f0b7e2a11")


def derived_event_id(source_event_id: uuid.UUID, kind: str) -> uuid.UUID:
    return uuid.uuid5(DERIVED_NAMESPACE, f"{source_event_id}:{kind}")


@dataclass(frozen=True)
class Sighting:
    """One customer (tenant, channel, external id) seen in a batch: all of their messages in it, in the batch's
    order. A lagging consumer's batch may hold a customer's first message and the notices after it (a Telegram
    user blocking the bot, a WhatsApp message without the phone): the card folds every one of them."""

    events: tuple[MessageReceived, ...]

    @cached_property
    def event(self) -> MessageReceived:
        """The newest by provider time (on a tie, the later in the batch)."""
        newest = self.events[0]
        for event in self.events[1:]:
            if event.provider_timestamp >= newest.provider_timestamp:
                newest = event
        return newest

    @property
    def key(self) -> tuple[str, str, str]:
        first = self.events[0]
        return (first.tenant_id, first.channel_id, first.external_user_id)

    @cached_property
    def event_ids(self) -> frozenset[str]:
        return frozenset(str(event.event_id) for event in self.events)

    @property
    def last_seen_at(self) -> datetime | None:
        """When the customer last wrote themselves (echoes of the business's own messages are not the customer)."""
        return max((e.provider_timestamp for e in self.events if e.direction == "inbound"), default=None)


def per_customer(events: list[MessageReceived]) -> list[Sighting]:
    """One sighting per customer key, in first-seen order, each with its messages in batch order; machine mail
    none."""
    grouped: dict[tuple[str, str, str], list[MessageReceived]] = {}
    for event in events:
        if event.email is not None and event.email.automatic:
            continue  # an auto-reply or a bounce (a mailer daemon) makes no contact
        grouped.setdefault((event.tenant_id, event.channel_id, event.external_user_id), []).append(event)
    return [Sighting(tuple(group)) for group in grouped.values()]


def customer_phone(event: MessageReceived) -> str | None:
    raw = event.customer.phone_e164 or event.customer.wa_id
    if not raw:
        return None
    try:
        return to_e164(raw)
    except InvalidPhoneNumber:
        return None  # a channel-side oddity must not stop the contact from being created


def identity_of(event: MessageReceived) -> dict[str, Any]:
    customer = event.customer
    return identity(event.channel_id, event.external_user_id, channel_type=event.channel_type.value,
                    username=customer.username, phone=customer_phone(event), platform_name=customer.profile_name)


def first_message_card(event: MessageReceived, contact_id: str) -> Card:
    """The card a customer's first message creates (deterministic: a replay builds the same card)."""
    profile_name = event.customer.profile_name if event.direction == "inbound" else None
    phone = customer_phone(event)
    card = new_card(contact_id, event.tenant_id, event.received_at, identities=[identity_of(event)],
                    phones=[phone] if phone else [], platform_name=profile_name,
                    created_by_event_id=str(event.event_id))
    card["emails"] = [event.customer.email.lower()] if event.customer.email else []
    card["avatar_url"] = event.customer.avatar_url if event.direction == "inbound" else None
    card["last_activity_at"] = event.provider_timestamp
    card["last_seen_at"] = event.provider_timestamp if event.direction == "inbound" else None
    card["platform_name_at"] = event.provider_timestamp if profile_name else None
    card["platform_name_event_id"] = str(event.event_id) if profile_name else None
    card["search_keys"] = search_keys(card)
    card["activity_key"] = activity_key(event.provider_timestamp, contact_id)
    return card


def first_sighting_card(sighting: Sighting, contact_id: str) -> Card:
    """The card a new customer's batch creates: built by the first of their messages, then told what the
    later ones in the batch tell (deterministic for the same batch)."""
    card = first_message_card(sighting.events[0], contact_id)
    card.update(refreshed(card, sighting.events[1:]) or {})
    card["last_activity_at"] = sighting.event.provider_timestamp
    card["last_seen_at"] = sighting.last_seen_at
    card["activity_key"] = activity_key(sighting.event.provider_timestamp, contact_id)
    return card


def refreshed(card: Mapping[str, Any], events: Sequence[MessageReceived]) -> dict[str, Any] | None:
    """What `events` (in order) tell anew about the card's customer, each read against the card as the ones
    before it left it; None if nothing."""
    merged: dict[str, Any] = {}
    current = card
    for event in events:
        changes = platform_name_refresh(current, event)
        if changes:
            merged.update(changes)
            current = {**current, **changes}
    return merged or None


# Telegram: the user blocked the bot, or started it again (ingest's my_chat_member notices).
BOT_NOTICES = {"bot_blocked": True, "bot_unblocked": False}


def _bot_blocked(event: MessageReceived) -> bool | None:
    kinds = [BOT_NOTICES[part.system_kind] for part in event.parts
             if isinstance(part, SystemPart) and part.system_kind in BOT_NOTICES]
    return kinds[-1] if kinds else None


def platform_name_refresh(card: Mapping[str, Any], event: MessageReceived) -> dict[str, Any] | None:
    """The fields to set when the channel tells something new about the customer, else None: a profile name
    newer than the one we hold, a picture the card lacks, the user blocking or unblocking the bot (on the
    identity: `blocked_the_bot`).

    The display name and a picture an agent set are never touched: the card keeps both."""
    ours = (event.channel_id, event.external_user_id)
    blocked_bot = _bot_blocked(event) if event.direction == "inbound" else None
    identities = [
        {**item, "blocked_the_bot": blocked_bot}
        if blocked_bot is not None and (item["channel_id"], item["external_user_id"]) == ours else item
        for item in card.get("identities", [])
    ]
    notices: dict[str, Any] = {"identities": identities} if identities != card.get("identities", []) else {}
    name = event.customer.profile_name
    held_at = card.get("platform_name_at")
    avatar = event.customer.avatar_url if event.direction == "inbound" and not card.get("avatar_url") else None
    if avatar:
        notices["avatar_url"] = avatar
    if event.direction != "inbound" or not name or name == card.get("platform_name"):
        return notices or None
    if held_at is not None and event.provider_timestamp < held_at:
        return notices or None  # an older message arriving late must not undo a newer name
    identities = [{**item, "platform_name": name} if (item["channel_id"], item["external_user_id"]) == ours else item
                  for item in identities]
    changes = {**notices, "platform_name": name, "platform_name_at": event.provider_timestamp,
               "identities": identities, "platform_name_event_id": str(event.event_id)}
    changes["search_keys"] = search_keys({**card, **changes})
    return changes
