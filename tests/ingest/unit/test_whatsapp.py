"""WhatsApp Cloud API payloads (reference §1.4-1.7) → exact normalised events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    ContactsPart,
    Customer,
    DeliveryStatus,
    DeliveryStatusReported,
    FlowReplyPart,
    LocationPart,
    MediaKind,
    MediaPart,
    MessageReceived,
    OrderPart,
    ReactionPart,
    Referral,
    ReplyPart,
    SharedContact,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.model import MalformedPayload
from parley_ingest.domain.providers import PLUGINS, plugins_for

PLUGIN = PLUGINS[ChannelType.WHATSAPP]


def normalise(kit, payload):
    context = kit.context(ChannelType.WHATSAPP, "wa-main")
    return PLUGIN.normalise(kit.channels.get("wa-main"), kit.body(payload), context)


def one_message(kit, name: str) -> MessageReceived:
    batch = normalise(kit, kit.whatsapp([kit.fixture("whatsapp_messages.json")[name]]))
    assert batch.rejected == []
    [normalised] = batch.events
    assert isinstance(normalised.event, MessageReceived)
    return normalised.event


def test_text_keys_the_customer_on_the_business_scoped_id(kit) -> None:
    contacts = [{"profile": {"name": "Dana Li"}, "wa_id": "447700900123", "user_id": "GB.28391746502938475612"}]
    message = kit.fixture("whatsapp_messages.json")["text"]
    batch = normalise(kit, kit.whatsapp([message], contacts=contacts))
    [normalised] = batch.events
    event = normalised.event
    assert (normalised.dedup_kind, normalised.dedup_id) == ("message", "wamid.EXAMPLEinbound0001")
    assert event.tenant_id == "acme" and event.channel_id == "wa-main" and event.correlation_id == "corr-test"
    assert event.external_user_id == "GB.28391746502938475612"
    assert event.partition_key() == b"acme|wa-main|GB.28391746502938475612"
    assert event.customer == Customer(phone_e164="+447700900123", wa_id="447700900123",
                                      business_scoped_user_id="GB.28391746502938475612", profile_name="Dana Li")
    assert event.provider_message_id == "wamid.EXAMPLEinbound0001"
    assert event.provider_timestamp == datetime.fromtimestamp(1795939200, UTC)
    assert event.parts == (TextPart(text="Hi, where is my parcel?"),)
    assert event.raw == message and event.raw_truncated is False


def test_without_business_scoped_id_the_wa_id_is_the_key(kit) -> None:
    event = one_message(kit, "image")
    assert event.external_user_id == "447700900123"
    assert event.customer.phone_e164 == "+447700900123"


@pytest.mark.parametrize(("name", "expected"), [
    ("image", MediaPart(media_kind=MediaKind.IMAGE, source="provider_id", reference="880011223344",
                        attachment_id="wamid.EXAMPLEimg01:0", mime_type="image/jpeg", sha256="3f1ce9",
                        caption="broken lid")),
    ("voice", MediaPart(media_kind=MediaKind.VOICE, source="provider_id", reference="880011223355",
                        attachment_id="wamid.EXAMPLEvoice01:0", mime_type="audio/ogg; codecs=opus", sha256="9a0b11")),
    ("video", MediaPart(media_kind=MediaKind.VIDEO, source="provider_id", reference="880011223377",
                        attachment_id="wamid.EXAMPLEvid01:0", mime_type="video/mp4", sha256="77aa01",
                        caption="unboxing")),
    ("document", MediaPart(media_kind=MediaKind.DOCUMENT, source="provider_id", reference="880011223366",
                           attachment_id="wamid.EXAMPLEdoc01:0", mime_type="application/pdf", sha256="c2d47f",
                           file_name="receipt-4471.pdf", caption="my receipt")),
    ("sticker", MediaPart(media_kind=MediaKind.STICKER, source="provider_id", reference="880011223388",
                          attachment_id="wamid.EXAMPLEstk01:0", mime_type="image/webp", sha256="5e5e")),
    ("location", LocationPart(latitude=51.5007, longitude=-0.1246, name="Depot North",
                              address="1 Example Rd, London")),
    ("contacts", ContactsPart(contacts=(
        SharedContact(name="Sam Courier", phones=("+44 7700 900777",), emails=("sam@courier.example",)),))),
    ("button_reply", ReplyPart(reply_kind="button", payload="reschedule", title="Reschedule")),
    ("list_reply", ReplyPart(reply_kind="list", payload="slot_am", title="Morning", description="08:00-12:00")),
    ("place", LocationPart(latitude=51.5033, longitude=-0.1196, name="Depot South", address="2 Example Rd, London",
                           url="https://depots.example/south")),
    ("flow", FlowReplyPart(name="flow", body="Sent", response={"flow_token": "tok-1", "slot": "am",
                                                                "notes": "ring twice"})),
    ("button", ReplyPart(reply_kind="button", payload="STOP_PROMOS", title="Stop promotions")),
    ("reaction", ReactionPart(target_provider_message_id="wamid.EXAMPLEoutbound0042", emoji="\N{THUMBS UP SIGN}")),
    ("order", OrderPart(catalog_id="cat-1", text="for the shop", items=(
        {"product_retailer_id": "boot-42", "quantity": 1, "item_price": 79.9, "currency": "GBP"},))),
    ("unsupported", UnsupportedPart(provider_type="poll_creation", description="Message type unknown")),
    ("system", SystemPart(system_kind="user_changed_number",
                          text="User Dana Li changed from 447700900123 to 447700900999")),
    ("future_type", UnsupportedPart(provider_type="hologram")),
])
def test_every_message_type_becomes_its_part(kit, name: str, expected: object) -> None:
    event = one_message(kit, name)
    assert event.parts == (expected,)
    assert event.raw == kit.fixture("whatsapp_messages.json")[name]


def test_replies_carry_the_quoted_message_and_forwards_do_not(kit) -> None:
    assert one_message(kit, "button_reply").reply_to_provider_message_id == "wamid.EXAMPLEoutbound0042"
    forwarded = one_message(kit, "forwarded")
    assert forwarded.forwarded is True and forwarded.reply_to_provider_message_id is None


def test_click_to_whatsapp_referral_is_a_free_entry_point(kit) -> None:
    event = one_message(kit, "referral")
    assert event.referral == Referral(source_type="ad", source_id="120000000000777",
                                      source_url="https://fb.me/exampleAd", headline="Winter sale",
                                      ctwa_clid="ARExampleClickId", free_entry_point=True)
    assert one_message(kit, "text").referral is None


def test_statuses_with_pricing_conversation_and_errors(kit) -> None:
    statuses = kit.fixture("whatsapp_statuses.json")
    batch = normalise(kit, kit.whatsapp(statuses=[statuses["delivered"], statuses["failed"], statuses["sent"]]))
    delivered, failed, sent = (n.event for n in batch.events)
    assert all(isinstance(e, DeliveryStatusReported) for e in (delivered, failed, sent))
    assert [n.dedup_id for n in batch.events] == [
        "wamid.EXAMPLEoutbound0042:delivered", "wamid.EXAMPLEoutbound0043:failed", "wamid.EXAMPLEoutbound0044:sent"]
    # a status answers our send: the phone we wrote to is its preferred key, the BSUID an identifier beside it
    assert delivered.external_user_id == "447700900123"
    assert batch.events[0].identity.identifiers == ("bsuid:GB.28391746502938475612", "wa:447700900123")
    assert delivered.status == DeliveryStatus.DELIVERED
    assert delivered.pricing.category == "service" and delivered.pricing.pricing_type == "free_customer_service"
    assert delivered.pricing.billable is False and delivered.pricing.pricing_model == "PMP"
    assert failed.external_user_id == "447700900456" and failed.status == DeliveryStatus.FAILED
    assert failed.errors[0].code == "131047" and failed.errors[0].title == "Re-engagement message"
    assert failed.errors[0].detail.startswith("Message failed to send because more than 24 hours")
    assert sent.pricing.conversation_id == "CONVERSATION_ID_1"
    assert sent.pricing.conversation_origin == "referral_conversion"
    assert sent.pricing.conversation_expires_at == datetime.fromtimestamp(1796025802, UTC)


def test_one_post_with_many_entries_changes_messages_and_statuses_gives_one_event_each(kit) -> None:
    messages, statuses = kit.fixture("whatsapp_messages.json"), kit.fixture("whatsapp_statuses.json")
    first = kit.whatsapp([messages["text"], messages["image"]], statuses=[statuses["read"]])
    second = kit.whatsapp([messages["location"]])
    payload = {"object": "whatsapp_business_account",
               "entry": [first["entry"][0], {"id": "100000000000001",
                                             "changes": [second["entry"][0]["changes"][0]] * 2}]}
    ids = [n.event.provider_message_id for n in normalise(kit, payload).events]
    assert ids == ["wamid.EXAMPLEinbound0001", "wamid.EXAMPLEimg01", "wamid.EXAMPLEoutbound0042",
                   "wamid.EXAMPLEloc01", "wamid.EXAMPLEloc01"]


def test_a_broken_item_is_rejected_alone_and_other_fields_go_to_the_dead_letter_topic(kit) -> None:
    broken = {"from": "447700900123", "id": "wamid.BROKEN", "type": "text", "text": {"body": "no timestamp"}}
    payload = kit.whatsapp([broken, kit.fixture("whatsapp_messages.json")["text"]])
    payload["entry"][0]["changes"].append({"field": "history", "value": {"history": []}})
    payload["entry"][0]["changes"].append({"field": "message_template_status_update", "value": {"event": "APPROVED"}})
    batch = normalise(kit, payload)
    assert [n.event.provider_message_id for n in batch.events] == ["wamid.EXAMPLEinbound0001"]
    # a template update without the template's name cannot be applied: a dead letter too
    assert [r.reason for r in batch.rejected] == ["normaliser_failed", "unhandled_provider_event",
                                                  "normaliser_failed"]
    assert b"wamid.BROKEN" in batch.rejected[0].raw


def test_an_edit_names_the_original_and_carries_the_edited_message(kit) -> None:
    batch = normalise(kit, kit.whatsapp([kit.fixture("whatsapp_messages.json")["edit"]]))
    [normalised] = batch.events
    event = normalised.event
    assert isinstance(event, MessageReceived)
    assert (event.provider_message_id, event.edited) == ("wamid.EXAMPLEimg01", True)
    assert normalised.dedup_id == "edit:wamid.EXAMPLEedit01"  # each edit once, apart from the original
    [image] = event.parts
    assert isinstance(image, MediaPart) and image.caption == "broken lid, see the corner"
    assert image.attachment_id == "wamid.EXAMPLEimg01:0"  # the original's attachment, not a new one
    assert event.reply_to_provider_message_id == "wamid.EXAMPLEoutbound0042"
    assert event.customer.wa_id == "447700900123"


def test_a_revoke_deletes_the_original(kit) -> None:
    batch = normalise(kit, kit.whatsapp([kit.fixture("whatsapp_messages.json")["revoke"]]))
    [normalised] = batch.events
    event = normalised.event
    assert isinstance(event, MessageReceived)
    assert (event.provider_message_id, event.edited) == ("wamid.EXAMPLEinbound0001", False)
    assert event.parts == (SystemPart(system_kind="revoked"),)
    assert normalised.dedup_id == "revoke:wamid.EXAMPLErevoke01"


def test_a_payload_for_another_phone_number_is_not_published_as_ours(kit) -> None:
    payload = kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]])
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    batch = normalise(kit, payload)
    assert batch.events == [] and [r.reason for r in batch.rejected] == ["phone_number_mismatch"]


def test_a_change_for_another_number_of_the_same_app_is_routed_to_that_channel(kit) -> None:
    payload = kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]])
    second = kit.whatsapp([kit.fixture("whatsapp_messages.json")["image"]])["entry"][0]["changes"][0]
    second["value"]["metadata"]["phone_number_id"] = "200000000000099"
    foreign = kit.whatsapp([kit.fixture("whatsapp_messages.json")["video"]])["entry"][0]["changes"][0]
    foreign["value"]["metadata"]["phone_number_id"] = "200000000000077"  # another Meta app: not vouched for
    payload["entry"][0]["changes"] += [second, foreign]
    plugin = plugins_for(kit.channels)[ChannelType.WHATSAPP]
    batch = plugin.normalise(kit.channels.get("wa-main"), kit.body(payload),
                             kit.context(ChannelType.WHATSAPP, "wa-main"))
    assert [(n.event.channel_id, n.event.provider_message_id) for n in batch.events] == [
        ("wa-main", "wamid.EXAMPLEinbound0001"), ("wa-second", "wamid.EXAMPLEimg01")]
    assert batch.events[1].event.partition_key() == b"acme|wa-second|447700900123"
    assert [r.reason for r in batch.rejected] == ["phone_number_mismatch"]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"object": "page", "entry": []}'])
def test_not_a_whatsapp_payload_is_malformed(kit, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        PLUGIN.normalise(kit.channels.get("wa-main"), body, kit.context(ChannelType.WHATSAPP, "wa-main"))


def test_raw_over_the_limit_is_dropped_and_flagged(kit) -> None:
    message = dict(kit.fixture("whatsapp_messages.json")["text"], text={"body": "x" * 70_000})
    event = normalise(kit, kit.whatsapp([message])).events[0].event
    assert event.raw is None and event.raw_truncated is True


def test_user_preferences_become_marketing_preference_events(kit) -> None:
    from parley_common.events.inbound import MarketingPreferenceChanged

    payload = kit.whatsapp()
    change = payload["entry"][0]["changes"][0]
    change["field"] = "user_preferences"
    change["value"].update(kit.fixture("whatsapp_account.json")["user_preferences_stop"])
    batch = normalise(kit, payload)
    assert batch.rejected == []
    (stop,) = (n.event for n in batch.events)
    assert isinstance(stop, MarketingPreferenceChanged)
    assert (stop.opted_out, stop.category, stop.external_user_id) == (True, "marketing_messages",
                                                                     "GB.28391746502938475612")
    assert stop.detail == "User requested to stop marketing messages"
    assert batch.events[0].identity.identifiers == ("bsuid:GB.28391746502938475612", "wa:447700900123")
