"""Telegram updates (reference §3) and Viber callbacks (§4) → exact normalised events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    ContactsPart,
    Customer,
    DeliveryStatus,
    DeliveryStatusReported,
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
from parley_ingest.domain.model import MalformedPayload
from parley_ingest.domain.providers import PLUGINS


def telegram(kit, name: str):
    update = kit.fixture("telegram_updates.json")[name]
    batch = PLUGINS[ChannelType.TELEGRAM].normalise(kit.channels.get("tg-bot"), kit.body(update),
                                                    kit.context(ChannelType.TELEGRAM, "tg-bot"))
    assert batch.rejected == []
    [normalised] = batch.events
    assert normalised.dedup_id == f"update:{update['update_id']}"
    return normalised.event


def viber(kit, name: str):
    callback = kit.fixture("viber_callbacks.json")[name]
    batch = PLUGINS[ChannelType.VIBER].normalise(kit.channels.get("viber-bot"), kit.body(callback),
                                                 kit.context(ChannelType.VIBER, "viber-bot"))
    assert batch.rejected == []
    return [n.event for n in batch.events]


def test_telegram_start_with_deep_link(kit) -> None:
    event = telegram(kit, "start")
    assert event.external_user_id == "7011223344" and event.provider_message_id == "7011223344:5512"
    assert event.customer == Customer(username="dana_li", profile_name="Dana Li", language="en")
    assert event.provider_timestamp == datetime.fromtimestamp(1795940000, UTC)
    assert event.parts == (TextPart(text="/start order-4471"),)
    assert event.referral == Referral(source_type="deep_link", source_id="order-4471")


@pytest.mark.parametrize(("name", "expected"), [
    ("photo", MediaPart(media_kind=MediaKind.IMAGE, source="provider_id", reference="AgACAgQAAxkBAAIEX1-large",
                        attachment_id="7011223344:5513:0", size_bytes=96420, caption="Damaged box")),
    ("voice", MediaPart(media_kind=MediaKind.VOICE, source="provider_id", reference="AwACAgQAAxkBAAIEY1-voice",
                        attachment_id="7011223344:5514:0", mime_type="audio/ogg", size_bytes=21544)),
    ("document", MediaPart(media_kind=MediaKind.DOCUMENT, source="provider_id", reference="BQACAgQAAxkBAAIEZ1-doc",
                           attachment_id="7011223344:5515:0", mime_type="application/pdf", file_name="receipt.pdf",
                           size_bytes=48211)),
    ("video", MediaPart(media_kind=MediaKind.VIDEO, source="provider_id", reference="BAACAgQAAxkBAAIEa1-vid",
                        attachment_id="7011223344:5516:0", mime_type="video/mp4", size_bytes=1048576)),
    ("sticker", MediaPart(media_kind=MediaKind.STICKER, source="provider_id", reference="CAACAgIAAxkBAAIEb1-stk",
                          attachment_id="7011223344:5517:0")),
    ("location", LocationPart(latitude=48.8584, longitude=2.2945)),
    ("contact", ContactsPart(contacts=(SharedContact(name="Sam Courier", phones=("+447700900777",)),))),
])
def test_telegram_content(kit, name: str, expected: object) -> None:
    assert telegram(kit, name).parts == (expected,)


def test_telegram_reply_edit_callback_and_unknown_update(kit) -> None:
    assert telegram(kit, "document").reply_to_provider_message_id == "7011223344:5600"
    edited = telegram(kit, "edited")
    assert edited.edited is True and edited.provider_timestamp == datetime.fromtimestamp(1795940180, UTC)
    callback = telegram(kit, "callback")
    assert callback.parts == (ReplyPart(reply_kind="callback", payload="confirm:4471"),)
    assert callback.reply_to_provider_message_id == "7011223344:5520"
    blocked = telegram(kit, "blocked")  # my_chat_member in a private chat: the user blocked the bot
    assert blocked.parts == (SystemPart(system_kind="bot_blocked"),)
    assert blocked.external_user_id == "7011223344"
    assert blocked.raw == kit.fixture("telegram_updates.json")["blocked"]
    group = kit.fixture("telegram_updates.json")["blocked"] | {"update_id": 1}
    group["my_chat_member"] = group["my_chat_member"] | {"chat": {"id": -100, "type": "group"}}
    batch = PLUGINS[ChannelType.TELEGRAM].normalise(kit.channels.get("tg-bot"), kit.body(group),
                                                    kit.context(ChannelType.TELEGRAM, "tg-bot"))
    assert batch.events[0].event.parts == (UnsupportedPart(provider_type="my_chat_member"),)  # not a user's block


def test_telegram_reactions_attach_to_their_message(kit) -> None:
    reaction = telegram(kit, "reaction")
    assert reaction.parts == (ReactionPart(target_provider_message_id="5210001234:4417", emoji="\N{THUMBS UP SIGN}"),)
    assert reaction.external_user_id == "5210001234" and reaction.customer.username == "tom_h"
    assert reaction.provider_message_id == "update:912000100"  # its own id: never mistaken for the message
    removed = telegram(kit, "reaction_removed")
    assert removed.parts == (ReactionPart(target_provider_message_id="5210001234:4417", emoji=None),)
    assert telegram(kit, "reaction_custom").parts[0].emoji == "\N{BLACK STAR}"


def test_viber_messages(kit) -> None:
    [text] = viber(kit, "text")
    assert text.external_user_id == "01234567890A=" and text.provider_message_id == "5741311803571721087"
    assert text.customer == Customer(profile_name="Dana Li", language="en",
                                     avatar_url="https://media.example/avatar.jpg")  # the Viber avatar, kept
    assert text.provider_timestamp == datetime.fromtimestamp(1795940400.123, UTC)
    assert text.parts == (TextPart(text="Hi, my order 4471?"),)
    assert viber(kit, "file")[0].parts == (MediaPart(
        media_kind=MediaKind.FILE, source="url", reference="https://dl-media.viber.com/example/receipt.pdf",
        attachment_id="5741311803571721099:0", file_name="receipt.pdf", size_bytes=48211),)
    assert viber(kit, "picture")[0].parts[0].caption == "the box"
    assert viber(kit, "location")[0].parts == (LocationPart(latitude=51.5, longitude=-0.12),)
    assert viber(kit, "contact")[0].parts == (ContactsPart(contacts=(SharedContact(name="Sam",
                                                                                   phones=("+447700900777",)),)),)
    assert viber(kit, "sticker")[0].parts[0].reference == "46105"


def test_viber_system_callbacks_and_statuses(kit) -> None:
    [started] = viber(kit, "conversation_started")
    assert started.parts == (SystemPart(system_kind="conversation_started", text="order-4471"),)
    assert started.referral == Referral(source_type="deep_link", source_id="order-4471")
    assert viber(kit, "subscribed")[0].parts == (SystemPart(system_kind="subscribed"),)
    [unsubscribed] = viber(kit, "unsubscribed")
    assert unsubscribed.external_user_id == "01234567890A="
    assert unsubscribed.parts == (SystemPart(system_kind="unsubscribed"),)
    [delivered], [seen], [failed] = viber(kit, "delivered"), viber(kit, "seen"), viber(kit, "failed")
    assert isinstance(delivered, DeliveryStatusReported) and delivered.status == DeliveryStatus.DELIVERED
    assert seen.status == DeliveryStatus.READ and seen.watermark == seen.provider_timestamp
    assert failed.status == DeliveryStatus.FAILED and failed.errors[0].detail == "keyboard validation failed"
    assert viber(kit, "webhook") == []


def test_viber_without_event_is_malformed(kit) -> None:
    with pytest.raises(MalformedPayload):
        PLUGINS[ChannelType.VIBER].normalise(kit.channels.get("viber-bot"), b'{"hello": 1}',
                                             kit.context(ChannelType.VIBER, "viber-bot"))
