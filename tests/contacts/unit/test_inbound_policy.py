"""What a customer message does: the first card, the platform-name refresh, the latest message per customer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from parley_common.events.inbound import Customer, MessageReceived, SystemPart, TextPart
from parley_contacts.domain.card import Key
from parley_contacts.domain.inbound import (
    derived_event_id,
    first_message_card,
    first_sighting_card,
    per_customer,
    platform_name_refresh,
    refreshed,
)

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def message(user: str = "447700900001", name: str | None = "José", at: datetime = T0, direction: str = "inbound",
            wa_id: str | None = None) -> MessageReceived:
    return MessageReceived(
        occurred_at=at, tenant_id="acme", correlation_id="c", channel_id="wa", external_user_id=user,
        channel_type="whatsapp", customer=Customer(wa_id=wa_id or user, profile_name=name, username="@JoseA"),
        provider_message_id="m", provider_timestamp=at, received_at=at, parts=(TextPart(text="hi"),),
        direction=direction)


def test_first_message_card() -> None:
    event = message()
    card = first_message_card(event, "c1")
    assert card["phones"] == ["+447700900001"] and card["platform_name"] == "José" and card["display_name"] is None
    assert card["last_seen_at"] == T0 and card["created_by_event_id"] == str(event.event_id)
    assert {Key.NAME + "jose", Key.USERNAME + "josea", Key.USER_ID + "447700900001"} <= set(card["search_keys"])
    assert first_message_card(event, "c1") == card  # a replay builds the same card


def test_echo_creates_without_last_seen_and_odd_phone_is_skipped() -> None:
    card = first_message_card(message(direction="echo", wa_id="12"), "c1")
    assert card["last_seen_at"] is None and card["platform_name"] is None and card["phones"] == []


def test_platform_name_refresh_only_for_newer_names() -> None:
    card = first_message_card(message(name="Ann"), "c1") | {"display_name": "Agent's name"}
    newer = platform_name_refresh(card, message(name="Annie", at=T0 + timedelta(minutes=1)))
    assert newer is not None and newer["platform_name"] == "Annie" and "display_name" not in newer
    assert newer["identities"][0]["platform_name"] == "Annie"
    assert Key.NAME + "annie" in newer["search_keys"] and Key.NAME + "agent's name" in newer["search_keys"]
    assert platform_name_refresh(card, message(name="Old", at=T0 - timedelta(minutes=1))) is None
    assert platform_name_refresh(card, message(name="Ann", at=T0 + timedelta(minutes=1))) is None
    assert platform_name_refresh(card, message(name=None, at=T0 + timedelta(minutes=1))) is None


def test_per_customer_groups_a_batch_in_order_and_knows_the_newest() -> None:
    old, new, other = message(at=T0), message(at=T0 + timedelta(seconds=5)), message(user="15550001111")
    sightings = per_customer([new, other, old])
    assert [s.events for s in sightings] == [(new, old), (other,)]
    assert [s.event for s in sightings] == [new, other]
    assert sightings[0].event_ids == {str(new.event_id), str(old.event_id)}
    echo = message(at=T0 + timedelta(seconds=9), direction="echo")
    assert per_customer([old, echo])[0].last_seen_at == T0  # the business's own message is not the customer
    assert per_customer([echo])[0].last_seen_at is None


def test_a_new_customers_batch_makes_one_card_of_all_their_messages() -> None:
    """A lagging consumer's batch holding the first message and what came after it: the phone of the first,
    the block of a later notice, the newest name, the newest activity."""
    first = message(name="Tom", at=T0)
    blocked = message(name="Tom", at=T0 + timedelta(seconds=1)).model_copy(update={
        "customer": Customer(profile_name="Tom"), "parts": (SystemPart(system_kind="bot_blocked"),)})
    renamed = message(name="Tommy", at=T0 + timedelta(seconds=2)).model_copy(update={
        "customer": Customer(profile_name="Tommy")})
    card = first_sighting_card(per_customer([first, blocked, renamed])[0], "c1")
    assert card["phones"] == ["+447700900001"] and card["created_by_event_id"] == str(first.event_id)
    assert card["identities"][0]["blocked_the_bot"] is True and card["identities"][0]["platform_name"] == "Tommy"
    assert card["platform_name"] == "Tommy" and card["platform_name_event_id"] == str(renamed.event_id)
    assert card["last_seen_at"] == card["last_activity_at"] == T0 + timedelta(seconds=2)
    assert Key.NAME + "tommy" in card["search_keys"]
    assert first_sighting_card(per_customer([first, blocked, renamed])[0], "c1") == card  # a replay: the same
    assert first_sighting_card(per_customer([first])[0], "c1") == first_message_card(first, "c1")


def test_refreshed_reads_each_message_against_the_card_the_ones_before_left() -> None:
    card = first_message_card(message(), "c1")
    notice = message(name=None, at=T0 + timedelta(seconds=1))
    blocked = notice.model_copy(update={"parts": (SystemPart(system_kind="bot_blocked"),)})
    unblocked = notice.model_copy(update={"parts": (SystemPart(system_kind="bot_unblocked"),)})
    assert refreshed(card, [blocked, unblocked])["identities"][0]["blocked_the_bot"] is False  # type: ignore[index]
    assert refreshed(card, [unblocked, blocked])["identities"][0]["blocked_the_bot"] is True  # type: ignore[index]
    assert refreshed(card, [message(at=T0 + timedelta(seconds=1))]) is None  # nothing new
    assert refreshed(card, []) is None


def test_derived_event_ids_are_stable() -> None:
    source = uuid.uuid4()
    assert derived_event_id(source, "created") == derived_event_id(source, "created")
    assert derived_event_id(source, "created") != derived_event_id(source, "platform_name")


def test_the_channels_avatar_fills_a_card_without_one_and_never_replaces_another() -> None:
    pictured = message().model_copy(update={"customer": Customer(profile_name="José",
                                                                 avatar_url="https://media.example/a.jpg")})
    assert first_message_card(pictured, "c1")["avatar_url"] == "https://media.example/a.jpg"
    card = first_message_card(message(), "c1")
    assert card["avatar_url"] is None
    assert platform_name_refresh(card, pictured) == {"avatar_url": "https://media.example/a.jpg"}
    assert platform_name_refresh({**card, "avatar_url": "https://agent.example/set.png"}, pictured) is None


def test_a_user_blocking_the_bot_is_marked_on_their_identity_only() -> None:
    card = first_message_card(message(), "c1")
    blocked = message(name=None).model_copy(update={"parts": (SystemPart(system_kind="bot_blocked"),)})
    changes = platform_name_refresh(card, blocked)
    assert changes is not None and changes["identities"][0]["blocked_the_bot"] is True
    unblocked = blocked.model_copy(update={"parts": (SystemPart(system_kind="bot_unblocked"),)})
    again = platform_name_refresh({**card, **changes}, unblocked)
    assert again is not None and again["identities"][0]["blocked_the_bot"] is False
    assert platform_name_refresh({**card, **changes}, blocked) is None  # nothing new
