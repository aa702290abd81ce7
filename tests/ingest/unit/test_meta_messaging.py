"""Messenger and Instagram `messaging[]` events (reference §2.2-2.3) → exact normalised events."""

from __future__ import annotations

from datetime import UTC, datetime

from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    DeliveryStatus,
    DeliveryStatusReported,
    MediaKind,
    MediaPart,
    MessageReceived,
    ReactionPart,
    Referral,
    ReplyPart,
    SystemPart,
    TextPart,
    UnsupportedPart,
)
from parley_ingest.domain.providers import PLUGINS


def normalise(kit, channel_type: ChannelType, channel_id: str, webhook_object: str, *events):
    plugin = PLUGINS[channel_type]
    body = kit.body(kit.meta(webhook_object, *events))
    return plugin.normalise(kit.channels.get(channel_id), body, kit.context(channel_type, channel_id))


def messenger(kit, name: str):
    batch = normalise(kit, ChannelType.MESSENGER, "fb-page", "page", kit.fixture("messenger_events.json")[name])
    assert batch.rejected == []
    return [n.event for n in batch.events]


def test_text_message_is_keyed_on_the_psid_with_the_provider_time(kit) -> None:
    [event] = messenger(kit, "text")
    assert isinstance(event, MessageReceived)
    assert event.external_user_id == "6000000000000061" and event.channel_type == ChannelType.MESSENGER
    assert event.provider_message_id == "m_EXAMPLEmid0001"
    assert event.provider_timestamp == datetime.fromtimestamp(1795939500.001, UTC)
    assert event.parts == (TextPart(text="Hello, is the shop open today?"),)
    assert event.direction == "inbound"


def test_quick_reply_attachments_and_reply_to(kit) -> None:
    [quick] = messenger(kit, "quick_reply")
    assert quick.parts == (ReplyPart(reply_kind="quick_reply", payload="CONFIRM_YES", title="Yes please"),)
    [attached] = messenger(kit, "attachments")
    assert attached.reply_to_provider_message_id == "m_EXAMPLEout01"
    assert attached.parts == (
        MediaPart(media_kind=MediaKind.IMAGE, source="url", reference="https://scontent.example/photo.jpg",
                  attachment_id="m_EXAMPLEatt01:0"),
        MediaPart(media_kind=MediaKind.FILE, source="url", reference="https://cdn.example/invoice.pdf",
                  attachment_id="m_EXAMPLEatt01:1"),
        UnsupportedPart(provider_type="attachment.fallback", description="Shared link"),
    )


def test_echo_is_keyed_on_the_recipient(kit) -> None:
    [echo] = messenger(kit, "echo")
    assert echo.direction == "echo" and echo.external_user_id == "6000000000000061"


def test_postback_and_ad_referral(kit) -> None:
    [postback] = messenger(kit, "postback")
    assert postback.provider_message_id == "m_EXAMPLEpostback01"
    assert postback.parts == (ReplyPart(reply_kind="postback", payload="TRACK_ORDER", title="Track my order"),)
    assert postback.referral == Referral(source_type="SHORTLINK", source_id="winter-campaign")
    [referral] = messenger(kit, "referral")
    assert referral.parts == (SystemPart(system_kind="referral", text="ad-ref"),)
    assert referral.referral == Referral(source_type="ADS", source_id="23850000000001", headline="Winter boots",
                                         free_entry_point=True)


def test_delivery_gives_one_status_per_mid_and_read_a_watermark(kit) -> None:
    delivered = messenger(kit, "delivery")
    assert [(e.provider_message_id, e.status) for e in delivered] == [
        ("m_EXAMPLEout01", DeliveryStatus.DELIVERED), ("m_EXAMPLEout02", DeliveryStatus.DELIVERED)]
    assert all(e.watermark == datetime.fromtimestamp(1795939800, UTC) for e in delivered)
    [read] = messenger(kit, "read")
    assert isinstance(read, DeliveryStatusReported)
    assert read.provider_message_id == "watermark:1795939800000" and read.status == DeliveryStatus.READ
    assert read.watermark == datetime.fromtimestamp(1795939800, UTC)


def test_reaction(kit) -> None:
    [reaction] = messenger(kit, "reaction")
    assert reaction.parts == (ReactionPart(target_provider_message_id="m_EXAMPLEout01", emoji="\u2764"),)


def test_instagram_message_story_mention_seen_edit_and_delete(kit) -> None:
    events = kit.fixture("instagram_events.json")
    batch = normalise(kit, ChannelType.INSTAGRAM, "ig-shop", "instagram", *events.values())
    text, story, seen, edit, deleted = (n.event for n in batch.events)
    assert text.channel_type == ChannelType.INSTAGRAM and text.external_user_id == "7000000000000071"
    assert story.parts == (UnsupportedPart(provider_type="attachment.story_mention",
                                           description="https://lookaside.example/story"),)
    assert isinstance(seen, DeliveryStatusReported)
    assert (seen.provider_message_id, seen.status) == ("aWdfZAExampleOut01", DeliveryStatus.READ)
    assert edit.edited is True and edit.parts == (TextPart(text="Do you ship to Lille?"),)
    assert batch.events[3].dedup_id == "edit:aWdfZAExampleMid01:1"
    assert deleted.parts == (SystemPart(system_kind="message_deleted"),)
    # the deletion names the deleted message by its own mid, yet is not a duplicate of it
    assert (deleted.provider_message_id, batch.events[4].dedup_id) == ("aWdfZAExampleMid03",
                                                                       "deleted:aWdfZAExampleMid03")


def test_a_messenger_payload_sent_to_an_instagram_channel_is_refused(kit) -> None:
    import pytest

    from parley_ingest.domain.model import MalformedPayload

    with pytest.raises(MalformedPayload):
        normalise(kit, ChannelType.INSTAGRAM, "ig-shop", "page", kit.fixture("messenger_events.json")["text"])


def test_unknown_event_kinds_are_published_as_unsupported(kit) -> None:
    odd = {"sender": {"id": "6000000000000061"}, "recipient": {"id": "300000000000003"}, "timestamp": 1795939990000,
           "pass_thread_control": {"new_owner_app_id": "123"}}
    batch = normalise(kit, ChannelType.MESSENGER, "fb-page", "page", odd)
    [event] = [n.event for n in batch.events]
    assert event.parts == (UnsupportedPart(provider_type="pass_thread_control"),) and event.raw == odd
