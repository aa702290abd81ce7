"""An idle consumer does not spin: after an empty fetch the fetcher pauses
(parley_common.kafka_seams.pace_idle_fetches), because the local broker answers empty fetches at once instead of
long-polling — from 5 ms, doubling while it stays idle, up to 40 ms, so a record that arrives at an idle consumer
is still read within ~50 ms. Guards the aiokafka seam the pacing hooks into: an upgrade that moves it makes this
test fail, not the machine quietly burn a core."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from known_channels import TEST_CHANNELS

from parley_common import kafka_seams
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group, pace_idle_lanes
from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher, make_broker
from parley_common.kafka_seams import FIRST_IDLE_PAUSE_MS, IDLE_FETCH_BACKOFF_MS, idle_pause, pace_idle_fetches
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

from .test_consumer_metrics import eventually
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


def test_the_pause_doubles_from_5_ms_up_to_the_longest_and_starts_again_after_records() -> None:
    pauses = [0.0]
    for _ in range(6):
        pauses.append(idle_pause(pauses[-1], 0.040))
    assert pauses[1:] == [0.005, 0.010, 0.020, 0.040, 0.040, 0.040]
    assert idle_pause(0.0, 0.040) == 0.005  # after a fetch with records (the pause is reset to 0)
    assert idle_pause(0.0, 0.002) == 0.002  # a longest pause below 5 ms is kept


@pytest.fixture
def chosen_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the paced fetcher chose after its empty fetches (the seam's own decision, not wall time)."""
    chosen: list[float] = []

    def recording(previous: float, longest: float) -> float:
        pause = idle_pause(previous, longest)
        chosen.append(pause)
        return pause

    monkeypatch.setattr(kafka_seams, "idle_pause", recording)
    return chosen


async def test_an_idle_consumer_fetches_at_most_some_25_times_a_second_and_pauses_no_longer_than_the_bound(
        kafka_topics: InfraSettings, fetch_counter: list[float], chosen_pauses: list[float]) -> None:
    """Wall time is only an upper bound here (a loaded machine fetches less often, never more): the bound on how
    long a record waits is read from the pauses the fetcher chose — at most the longest, and from 5 ms again once
    records came — so a pause that grew past the bound (or a fixed long one) fails on any machine."""
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    longest = IDLE_FETCH_BACKOFF_MS / 1000
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap,
                                group_id=f"pacing-{kafka_topics.namespace}", auto_offset_reset="earliest")
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
        fetch_counter.clear()
        await asyncio.sleep(2)
        idle_rate = len(fetch_counter) / 2
        # one fetch per 40 ms at most while idle (fewer on a loaded machine): 25/s, and a little for the first
        assert idle_rate <= 30, f"{idle_rate:.0f} fetches/s while idle: the pacing no longer applies"
        assert chosen_pauses and max(chosen_pauses) == longest, chosen_pauses  # idle pauses grow to the bound only

        broker = make_broker(kafka_topics.kafka_bootstrap, "pacing-test")
        await broker.connect()
        publisher = EventPublisher(broker, kafka_topics.namespace)
        waits = []
        try:
            for _ in range(3):
                await asyncio.sleep(0.3)  # idle long enough for the longest pause
                chosen_pauses.clear()
                await publisher.publish(message(), INBOUND_MESSAGES)
                stored = time.monotonic()
                record = await asyncio.wait_for(consumer.getone(), 10)
                assert record.value is not None
                waits.append(time.monotonic() - stored)
                # while the record waited, no pause past the bound (none at all when the next fetch found it)
                assert max(chosen_pauses, default=0) <= longest, chosen_pauses
                await eventually(lambda: FIRST_IDLE_PAUSE_MS / 1000 in chosen_pauses, 10)  # idle again: from 5 ms
        finally:
            await broker.stop()
        print(f"idle: {idle_rate:.0f} fetches/s; records read {[round(w * 1000) for w in waits]} ms after stored")
    finally:
        await consumer.stop()



async def test_a_lane_with_its_own_idle_pause_waits_up_to_it_and_picks_a_record_up_within_it(
        kafka_topics: InfraSettings, chosen_pauses: list[float]) -> None:
    """`ConsumerGroup.idle_pause_ms` (contacts' profile look-ups): the lane's consumer, once its broker started and
    `pace_idle_lanes` ran, pauses up to its own bound instead of the process's, and still reads a record."""
    broker = make_broker(kafka_topics.kafka_bootstrap, "lane-pacing")
    publisher = EventPublisher(broker, kafka_topics.namespace)
    seen: asyncio.Queue[MessageReceived] = asyncio.Queue()
    lane = ConsumerGroup("lane-pacing", (Reads(INBOUND_MESSAGES, seen.put),), idle_pause_ms=200)
    consume_group(broker, lane, namespace=kafka_topics.namespace, publisher=publisher, service="test",
                  channels=TEST_CHANNELS)
    await broker.start()
    try:
        pace_idle_lanes(broker)
        await publisher.publish(message(), INBOUND_MESSAGES)
        await asyncio.wait_for(seen.get(), 30)  # joined and fetching
        chosen_pauses.clear()
        await eventually(lambda: 0.2 in chosen_pauses, 10)  # idle pauses grow past the process's 40 ms to 200
        assert max(chosen_pauses) == 0.2, chosen_pauses
        await publisher.publish(message(), INBOUND_MESSAGES)
        await asyncio.wait_for(seen.get(), 10)
    finally:
        await broker.stop()
