"""A batch consumer picks up a record the moment it arrives, also after an idle spell: FastStream's batch
subscriber slept a whole `batch_timeout_ms` after each empty wait (parley_common.kafka.take_batches_without_idle_
sleep removes that sleep). Guards the FastStream seam: an upgrade that moves it makes this test fail."""

from __future__ import annotations

import asyncio
import time

from known_channels import TEST_CHANNELS

from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher, make_broker, subscribe_batch
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

from .test_kafka_roundtrip import message

BATCH_TIMEOUT_MS = 100


async def test_records_arriving_one_by_one_wait_far_less_than_the_batch_timeout(kafka_topics: InfraSettings) -> None:
    # the fetcher's own idle pause (up to 40 ms by default; test_idle_fetch_pacing holds it to its bound) kept at
    # 5 ms: this test is about FastStream's sleep, which would add up to 100 ms
    broker = make_broker(kafka_topics.kafka_bootstrap, "batch-latency", idle_fetch_backoff_ms=5)
    publisher = EventPublisher(broker, kafka_topics.namespace)
    texts = ["warm-up"] + [f"m{n}" for n in range(16)]
    arrivals = {text: asyncio.get_running_loop().create_future() for text in texts}

    async def handle(event: MessageReceived) -> None:
        arrivals[event.parts[0].text].set_result(time.monotonic())  # type: ignore[union-attr]

    subscribe_batch(broker, INBOUND_MESSAGES, group_id="latency", namespace=kafka_topics.namespace, handle=handle,
                    publisher=publisher, service="test", channels=TEST_CHANNELS, batch_timeout_ms=BATCH_TIMEOUT_MS)
    await broker.start()
    try:
        await publisher.publish(message(text="warm-up"), INBOUND_MESSAGES)
        await asyncio.wait_for(arrivals["warm-up"], 30)
        sent: dict[str, float] = {}
        for n, text in enumerate(texts[1:]):
            # Idle spells longer than the timeout, ending at varying phases of the sleep that followed it
            # (which would hold a record 200 - gap ms: a median near 45 ms).
            await asyncio.sleep(0.12 + 0.005 * n)
            sent[text] = time.monotonic()
            await publisher.publish(message(text=text), INBOUND_MESSAGES)
        await asyncio.wait_for(asyncio.gather(*arrivals.values()), 30)
    finally:
        await broker.stop()

    waits = sorted(arrivals[text].result() - sent[text] for text in sent)
    assert waits[len(waits) // 2] < 0.02, f"median pick-up {waits[len(waits) // 2] * 1000:.0f} ms: {waits}"
