"""The sandbox channel's small JSON body (docs/channels.md, Sandbox) → exact normalised events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley_common.events.common import ChannelType
from parley_common.events.inbound import Customer, DeliveryStatus, DeliveryStatusReported, MessageReceived, TextPart
from parley_ingest.domain.model import MalformedPayload
from parley_ingest.domain.providers import PLUGINS

PLUGIN = PLUGINS[ChannelType.SANDBOX]


def normalise(kit, payload: dict):
    return PLUGIN.normalise(kit.channels.get("sb"), kit.body(payload), kit.context(ChannelType.SANDBOX, "sb"))


def test_a_customer_message(kit) -> None:
    batch = normalise(kit, {"type": "message", "id": "m-1", "user_id": "ann", "name": "Ann", "text": "Hello",
                            "timestamp": 1795940000})
    assert batch.rejected == []
    [normalised] = batch.events
    event = normalised.event
    assert isinstance(event, MessageReceived)
    assert (normalised.dedup_kind, normalised.dedup_id) == ("message", "m-1")
    assert event.channel_type is ChannelType.SANDBOX and event.channel_id == "sb" and event.tenant_id == "acme"
    assert event.external_user_id == "ann" and event.provider_message_id == "m-1"
    assert event.customer == Customer(profile_name="Ann")
    assert event.parts == (TextPart(text="Hello"),)
    assert event.provider_timestamp == datetime.fromtimestamp(1795940000, UTC)


@pytest.mark.parametrize(("word", "status"), [("delivered", DeliveryStatus.DELIVERED), ("read", DeliveryStatus.READ),
                                              ("failed", DeliveryStatus.FAILED)])
def test_a_status_callback(kit, word: str, status: DeliveryStatus) -> None:
    batch = normalise(kit, {"type": "status", "message_id": "sb-1", "user_id": "ann", "status": word,
                            "timestamp": "2026-11-27T12:00:05+00:00"})
    [normalised] = batch.events
    event = normalised.event
    assert isinstance(event, DeliveryStatusReported)
    assert (event.provider_message_id, event.status, event.external_user_id) == ("sb-1", status, "ann")
    assert event.provider_timestamp == datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
    assert normalised.dedup_id == f"sb-1:{status.value}"
    assert len(event.errors) == (1 if status is DeliveryStatus.FAILED else 0)


def test_without_a_timestamp_the_time_of_receipt_counts(kit) -> None:
    [normalised] = normalise(kit, {"type": "message", "id": "m-2", "user_id": "ann", "text": "Hi"}).events
    assert normalised.event.provider_timestamp == kit.context(ChannelType.SANDBOX, "sb").received_at


def test_an_unknown_status_is_a_dead_letter_and_an_unknown_type_is_malformed(kit) -> None:
    batch = normalise(kit, {"type": "status", "message_id": "sb-1", "user_id": "ann", "status": "exploded"})
    assert batch.events == [] and [r.reason for r in batch.rejected] == ["normaliser_failed"]
    with pytest.raises(MalformedPayload):
        normalise(kit, {"type": "typing", "user_id": "ann"})


def test_only_the_channel_bearer_secret_is_accepted(kit) -> None:
    channel, body = kit.channels.get("sb"), b"{}"
    assert PLUGIN.verify(channel, {"authorization": f"Bearer {kit.sandbox_secret}"}, body)
    assert not PLUGIN.verify(channel, {"authorization": "Bearer wrong"}, body)
    assert not PLUGIN.verify(channel, {"authorization": kit.sandbox_secret}, body)  # no Bearer scheme
    assert not PLUGIN.verify(channel, {}, body)
