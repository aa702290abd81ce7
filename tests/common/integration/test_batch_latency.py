"""A batch consumer picks up a record the moment it arrives, also after an idle spell: FastStream's batch
subscriber slept a whole `batch_timeout_ms` after each empty wait
(parley_common.kafka_seams.take_batches_without_idle_sleep removes that sleep). Guards the FastStream seam: an
upgrade that moves it makes this test fail.

Measured against a baseline taken in the same run, on the same records: a one-record consumer (FastStream's
`getone`, which never had that sleep) in another group of the same broker and event loop. Whatever a loaded
machine adds (a late event loop, a slow broker) both consumers meet at once, so the batch consumer's lead or lag
on each record is the sleep or nothing; an absolute bound (a 20 ms median) failed at load 30 on two cores."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from faststream.kafka.message import KafkaMessage
from known_channels import TEST_CHANNELS

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

from .test_kafka_roundtrip import message

BATCH_TIMEOUT_MS = 250
RECORDS = 16


async def test_after_an_idle_spell_a_batch_consumer_is_as_quick_as_a_one_record_consumer(
        kafka_topics: InfraSettings) -> None:
    # the fetcher's own idle pause (up to 40 ms by default; test_idle_fetch_pacing holds it to its bound) kept at
    # 5 ms: this test is about FastStream's sleep
    broker = make_broker(kafka_topics.kafka_bootstrap, "batch-latency", idle_fetch_backoff_ms=5)
    publisher = EventPublisher(broker, kafka_topics.namespace)
    texts = ["warm-up"] + [f"m{n}" for n in range(RECORDS)]
    loop = asyncio.get_running_loop()
    batch_seen = {text: loop.create_future() for text in texts}
    one_seen = {text: loop.create_future() for text in texts}

    def noting(seen: dict[str, asyncio.Future[float]]) -> Callable[[MessageReceived], Awaitable[None]]:
        async def handle(event: MessageReceived) -> None:
            seen[event.parts[0].text].set_result(time.monotonic())  # type: ignore[union-attr]
        return handle

    consume_group(broker, ConsumerGroup("latency-batch", (Reads(INBOUND_MESSAGES, noting(batch_seen)),),
                                        batch_wait_ms=BATCH_TIMEOUT_MS),
                  namespace=kafka_topics.namespace, publisher=publisher, service="test", channels=TEST_CHANNELS)
    one_record = noting(one_seen)

    async def itself(message: KafkaMessage) -> KafkaMessage:
        return message

    # the baseline: FastStream's one-record subscriber (`getone`), which our consumers do not use
    @broker.subscriber(INBOUND_MESSAGES.name(kafka_topics.namespace), group_id=f"{kafka_topics.namespace}.latency-one",
                       auto_offset_reset="earliest", decoder=itself)
    async def on_one(message: KafkaMessage) -> None:
        await one_record(INBOUND_MESSAGES.parse(message.body))
    await broker.start()
    try:
        await publisher.publish(message(text="warm-up"), INBOUND_MESSAGES)
        await asyncio.wait_for(asyncio.gather(batch_seen["warm-up"], one_seen["warm-up"]), 60)
        for n, text in enumerate(texts[1:]):
            # Idle spells longer than the timeout, ending at varying phases of the sleep that followed it: the
            # sleep would hold a record 2 x 250 - spell ms (50-200 ms, a median near 125 ms).
            await asyncio.sleep(BATCH_TIMEOUT_MS / 1000 * (1.2 + 0.6 * n / RECORDS))
            await publisher.publish(message(text=text), INBOUND_MESSAGES)
        await asyncio.wait_for(asyncio.gather(*batch_seen.values(), *one_seen.values()), 60)
    finally:
        await broker.stop()

    lags = sorted(batch_seen[text].result() - one_seen[text].result() for text in texts[1:])
    median = statistics.median(lags)
    assert median < BATCH_TIMEOUT_MS / 1000 / 5, (
        f"the batch consumer's median lag behind a one-record consumer: {median * 1000:.0f} ms "
        f"(the sleep would make it ~{BATCH_TIMEOUT_MS / 2:.0f} ms): {[round(lag * 1000) for lag in lags]}")


async def test_a_lane_that_lingers_takes_records_arriving_within_its_linger_in_one_batch(
        kafka_topics: InfraSettings) -> None:
    """`ConsumerGroup.linger_ms` (contacts' inbound lane): a record arriving while a batch that is not full lingers
    joins it: a low rate still shares the batch's bulk writes."""
    broker = make_broker(kafka_topics.kafka_bootstrap, "batch-linger", idle_fetch_backoff_ms=5)
    publisher = EventPublisher(broker, kafka_topics.namespace)
    batches: asyncio.Queue[tuple[float, list[str]]] = asyncio.Queue()

    async def handle(events: list[MessageReceived]) -> None:
        await batches.put((time.monotonic(), [event.parts[0].text for event in events]))  # type: ignore[union-attr]

    consume_group(broker, ConsumerGroup("linger", (Reads(INBOUND_MESSAGES, handle, whole_batch=True),),
                                        linger_ms=400),
                  namespace=kafka_topics.namespace, publisher=publisher, service="test", channels=TEST_CHANNELS)
    await broker.start()
    try:
        await publisher.publish(message(text="warm-up"), INBOUND_MESSAGES)
        await asyncio.wait_for(batches.get(), 60)
        await publisher.publish(message(text="first"), INBOUND_MESSAGES)
        published = time.monotonic()
        await asyncio.sleep(0.1)
        await publisher.publish(message(text="second"), INBOUND_MESSAGES)
        handled_at, texts = await asyncio.wait_for(batches.get(), 30)
        assert texts == ["first", "second"], texts
        assert handled_at - published >= 0.4  # it lingered
    finally:
        await broker.stop()
