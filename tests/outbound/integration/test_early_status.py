"""A delivery status consumed before outbound stored its message's provider id (the webhook beat our write) is
parked, then applied when the sender records the id: the message still ends `read`, and duplicates change nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from outbound_helpers import TENANT, eventually, publisher, read_topic

from parley_common.events.inbound import DeliveryStatus, DeliveryStatusReported
from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_STATUSES, OUTBOUND_MESSAGES
from parley_outbound.adapters.parked_statuses import ParkedStatusRepository
from parley_outbound.domain.status import State
from parley_outbound.handlers.updates import message_doc

pytestmark = pytest.mark.asyncio(loop_scope="module")
USER = "447700900777"
PROVIDER_ID = "wamid.early-1"


def status(value: DeliveryStatus, at: datetime) -> DeliveryStatusReported:
    return DeliveryStatusReported(occurred_at=at, tenant_id=TENANT, correlation_id="c-early", channel_id="wa-main",
                                  external_user_id=USER, channel_type="whatsapp", provider_message_id=PROVIDER_ID,
                                  status=value, provider_timestamp=at)


async def test_status_before_provider_id_is_parked_then_applied(app: FastAPI, module_infra: InfraSettings) -> None:
    sender = app.state.sender
    now = datetime.now(UTC)
    command = SendMessage(occurred_at=now, tenant_id=TENANT, correlation_id="c-early", channel_id="wa-main",
                          external_user_id=USER, message_id="early-1", channel_type="whatsapp",
                          sender=Sender(kind="bot", bot_id="b"), content=OutboundText(text="x"))
    doc = message_doc(command, State.SENDING, now, {})
    await sender.messages.insert(doc)
    mongo = mongo_client(module_infra.mongo_uri, "parley-tests")
    parked = ParkedStatusRepository(mongo[module_infra.database_name("outbound")])
    try:
        read, delivered = status(DeliveryStatus.READ, now + timedelta(seconds=2)), status(
            DeliveryStatus.DELIVERED, now + timedelta(seconds=1))
        for event in (read, read, delivered):  # one partition (same conversation): consumed in this order
            await publisher(app).publish(event, INBOUND_STATUSES)

        async def both_parked() -> bool:
            return len(await parked.parked(TENANT, "wa-main", PROVIDER_ID)) == 2
        await eventually(both_parked)
        assert (await sender.messages.get(TENANT, "early-1"))["state"] == "sending"

        await sender.record_sent(doc, PROVIDER_ID)
        stored = await sender.messages.get(TENANT, "early-1")
        assert stored["state"] == "read" and stored["provider_message_id"] == PROVIDER_ID
        assert await parked.parked(TENANT, "wa-main", PROVIDER_ID) == []

        await publisher(app).publish(read, INBOUND_STATUSES)  # the provider retries its webhook: changes nothing
        await asyncio.sleep(0.5)
        assert await sender.messages.get(TENANT, "early-1") == stored
        assert await parked.parked(TENANT, "wa-main", PROVIDER_ID) == []
        updates = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 3,
                                   where=lambda event: event.message_id == "early-1")
        assert [event.status.value for event in updates] == ["sent", "delivered", "read"]
    finally:
        await mongo.close()
