"""An idle consumer does not spin: after an empty fetch the fetcher pauses (parley_common.kafka.pace_idle_fetches),
because the local broker answers empty fetches at once instead of long-polling. Guards the aiokafka seam the
pacing hooks into: an upgrade that moves it makes this test fail, not the machine quietly burn a core."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher

from parley_common.kafka import EventPublisher, make_broker, pace_idle_fetches
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

from .test_kafka_roundtrip import message


@pytest.fixture
def fetch_counter() -> Iterator[list[float]]:
    """Times of the fetch requests sent while the test runs (a counting shim under the pacing wrapper)."""
    before = Fetcher._proc_fetch_request
    unpaced = getattr(before, "__wrapped__", before)
    sent: list[float] = []

    async def counting(self: Fetcher, *args: Any) -> bool:
        sent.append(time.monotonic())
        result: bool = await unpaced(self, *args)
        return result

    Fetcher._proc_fetch_request = counting
    yield sent
    Fetcher._proc_fetch_request = before


async def test_an_idle_consumer_fetches_a_few_dozen_times_a_second_and_still_reads_at_once(
        kafka_topics: InfraSettings, fetch_counter: list[float]) -> None:
    pace_idle_fetches(10)
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap,
                                group_id=f"pacing-{kafka_topics.namespace}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
        fetch_counter.clear()
        await asyncio.sleep(2)
        idle_rate = len(fetch_counter) / 2
        assert idle_rate < 150, f"{idle_rate:.0f} fetches/s while idle: the pacing no longer applies"

        broker = make_broker(kafka_topics.kafka_bootstrap, "pacing-test")
        await broker.connect()
        try:
            published = time.monotonic()
            await EventPublisher(broker, kafka_topics.namespace).publish(message(), INBOUND_MESSAGES)
            record = await asyncio.wait_for(consumer.getone(), 10)
            assert record.value is not None
            assert time.monotonic() - published < 1.0
        finally:
            await broker.stop()
    finally:
        await consumer.stop()
