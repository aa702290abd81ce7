"""A real event through the real broker: conversation key, CloudEvents headers, dead letters, and bounded retries
(parley_common.retries): a handler that keeps failing with an error that is not an outage is tried ATTEMPTS times,
then its record is dead-lettered with the reason and the partition goes on; a handler whose database is
unreachable for longer than those attempts take is tried until the database answers again, and nothing is
dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from known_channels import TEST_CHANNELS
from tcp_proxy import TcpProxy

from parley_common import retries
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.mongo import mongo_client
from parley_common.records import PermanentFailure
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

    consume_group(broker, ConsumerGroup("g", (Reads(INBOUND_MESSAGES, handle),)), namespace=kafka_topics.namespace,
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


def _text(event: MessageReceived) -> str:
    return event.parts[0].text  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def consuming(settings: InfraSettings, handle: Any) -> AsyncIterator[EventPublisher]:
    broker = make_broker(settings.kafka_bootstrap, "test")
    publisher = EventPublisher(broker, settings.namespace)
    consume_group(broker, ConsumerGroup("g", (Reads(INBOUND_MESSAGES, handle),)), namespace=settings.namespace,
                  publisher=publisher, service="test", channels=TEST_CHANNELS)
    await broker.start()
    try:
        yield publisher
    finally:
        await asyncio.wait_for(broker.stop(), 30)


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_its_attempts_and_the_partition_goes_on(
        kafka_topics: InfraSettings) -> None:
    tries: dict[str, int] = {}
    after = asyncio.Event()

    async def handle(event: MessageReceived) -> None:
        text = _text(event)
        tries[text] = tries.get(text, 0) + 1
        if text == "poison":
            raise ValueError("a bug the handler never gets past")
        after.set()

    async with consuming(kafka_topics, handle) as publisher:
        await publisher.publish(message(text="poison"), INBOUND_MESSAGES)
        await publisher.publish(message(text="after"), INBOUND_MESSAGES)  # same key: same partition, behind it
        await asyncio.wait_for(after.wait(), 60)
        letters = await read_letters(kafka_topics, 1)

    assert tries == {"poison": retries.ATTEMPTS, "after": 1}
    assert letters[0].reason == retries.GIVEN_UP == "handler_failed"
    assert letters[0].detail == "ValueError: a bug the handler never gets past"
    assert letters[0].service == "test" and letters[0].source_topic == INBOUND_MESSAGES.name(kafka_topics.namespace)


# ~10 s and ~21 s: in `make test-long` (make test's time is scarce; the policy's side is tests/common/unit)
@pytest.mark.parametrize("outage_s", [pytest.param(0.0, id="as-long-as-the-attempts", marks=pytest.mark.slow_soak),
                                      pytest.param(20.0, id="20s", marks=pytest.mark.slow_soak)])
async def test_a_database_outage_longer_than_the_attempts_dead_letters_nothing(kafka_topics: InfraSettings,
                                                                                outage_s: float) -> None:
    """The database stays unreachable until the handler failed as often as a bug is tried before its dead letter
    (~9 s), and at least `outage_s`."""
    host, port = kafka_topics.mongo_uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    relay = TcpProxy(host, int(port))
    await relay.plug()
    database = mongo_client(f"mongodb://127.0.0.1:{relay.port}/?directConnection=true&retryWrites=false",
                            "parley-tests", serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    stored = database[f"retries_{kafka_topics.namespace}"]["stored"]
    failures: list[str] = []

    async def handle(event: MessageReceived) -> None:
        try:
            await stored.insert_one({"_id": _text(event)})
        except Exception as error:
            failures.append(type(error).__name__)
            raise

    try:
        async with consuming(kafka_topics, handle) as publisher:
            await publisher.publish(message(text="before"), INBOUND_MESSAGES)
            await _until(lambda: _has(stored, "before"), within=30)
            await relay.unplug()
            down = time.monotonic()
            await publisher.publish(message(text="during"), INBOUND_MESSAGES)
            await _until(lambda: _at_least(failures, retries.ATTEMPTS), within=60)
            await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - down)))
            await relay.plug()  # the same port: the database is back
            await _until(lambda: _has(stored, "during"), within=60)
            print(f"database down {time.monotonic() - down:.1f}s: {len(failures)} failed tries, then stored")
            letters = await _letters_within(kafka_topics, seconds=2.0)
        assert letters == []
    finally:
        await stored.database.client.drop_database(stored.database.name)
        await database.close()
        with contextlib.suppress(Exception):
            await relay.unplug()


async def _at_least(failures: list[str], count: int) -> bool:
    return len(failures) >= count


async def _has(collection: Any, document_id: str) -> bool:
    with contextlib.suppress(Exception):
        return await collection.find_one({"_id": document_id}) is not None
    return False


async def _until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"not within {within}s"
        await asyncio.sleep(0.1)


async def _letters_within(settings: InfraSettings, seconds: float) -> list[Any]:
    """The dead letters of this namespace published so far (none expected: waits `seconds` for any)."""
    with contextlib.suppress(TimeoutError):
        return await asyncio.wait_for(read_letters(settings, 1), seconds)
    return []
