"""A real event through the real broker: conversation key, CloudEvents headers, dead letters."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from known_channels import TEST_CHANNELS

from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, PermanentFailure, make_broker, subscribe
from parley_common.settings import InfraSettings
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES


def message(tenant: str = "acme", text: str = "hello", channel: str = "wa-main") -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id=tenant, correlation_id="corr-1", channel_id=channel,
        external_user_id="15550001111", channel_type="whatsapp", customer=Customer(wa_id="15550001111"),
        provider_message_id="wamid.1", provider_timestamp=now, received_at=now, parts=(TextPart(text=text),),
    )


async def read_one(settings: InfraSettings, topic_name: str) -> Any:
    consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{settings.namespace}")
    await consumer.start()
    try:
        return await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()


async def read_letters(settings: InfraSettings, count: int) -> list[Any]:
    letters = []
    consumer = AIOKafkaConsumer(DEAD_LETTERS.name(settings.namespace), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id="dlq-reader")
    await consumer.start()
    try:
        while len(letters) < count:
            record = await asyncio.wait_for(consumer.getone(), 20)
            letters.append(DEAD_LETTERS.parse(record.value))
    finally:
        await consumer.stop()
    return letters


async def test_published_event_carries_key_and_cloudevents_headers(kafka_topics: InfraSettings) -> None:
    broker = make_broker(kafka_topics.kafka_bootstrap, "test")
    await broker.connect()
    try:
        event = message()
        await EventPublisher(broker, kafka_topics.namespace).publish(event, INBOUND_MESSAGES)
    finally:
        await broker.stop()

    record = await read_one(kafka_topics, INBOUND_MESSAGES.name(kafka_topics.namespace))
    headers = {key: value.decode() for key, value in record.headers}
    assert record.key == b"acme|wa-main|15550001111"
    assert headers["ce_id"] == str(event.event_id)
    assert headers["ce_type"] == "parley.message.received"
    assert headers["ce_source"] == "parley/ingest"
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_correlationid"] == "corr-1"
    assert INBOUND_MESSAGES.parse(record.value) == event


async def test_consumer_handles_good_records_and_dead_letters_bad_ones(kafka_topics: InfraSettings) -> None:
    broker = make_broker(kafka_topics.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, kafka_topics.namespace)
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(event: MessageReceived) -> None:
        text = event.parts[0].text  # type: ignore[union-attr]
        if text == "refuse":
            raise PermanentFailure("refused_by_test", "the handler refused it")
        seen.append(text)
        if text == "last":
            done.set()

    subscribe(broker, INBOUND_MESSAGES, group_id="g", namespace=kafka_topics.namespace, handle=handle,
              publisher=publisher, service="test", channels=TEST_CHANNELS)
    await broker.start()
    try:
        topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
        await publisher.publish(message(text="first"), INBOUND_MESSAGES)
        await broker.publish(b"{not json", topic=topic, key=b"acme|wa-main|15550001111")  # same partition: order kept
        await publisher.publish(message(text="refuse"), INBOUND_MESSAGES)
        await publisher.publish(message(tenant="globex", text="acme's channel"), INBOUND_MESSAGES)
        await publisher.publish(message(text="no such channel", channel="wa-nowhere"), INBOUND_MESSAGES)
        await publisher.publish(message(text="last"), INBOUND_MESSAGES)
        await asyncio.wait_for(done.wait(), 30)
        letters = await read_letters(kafka_topics, 4)  # the mismatched channels are on other partitions
    finally:
        await asyncio.wait_for(broker.stop(), 30)

    assert seen == ["first", "last"]
    reasons = sorted(letter.reason for letter in letters)
    assert reasons == ["channel_of_another_tenant", "invalid_event", "refused_by_test", "unknown_channel"]
    foreign = next(letter for letter in letters if letter.reason == "channel_of_another_tenant")
    assert foreign.tenant_id == "globex" and "wa-main" in (foreign.detail or "")
    invalid = next(letter for letter in letters if letter.reason == "invalid_event")
    assert base64.b64decode(invalid.original_value_base64) == b"{not json"
    assert invalid.source_topic == INBOUND_MESSAGES.name(kafka_topics.namespace)
