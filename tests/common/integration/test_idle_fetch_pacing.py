"""An idle consumer does not spin: after an empty fetch the fetcher pauses
(parley_common.kafka_seams.pace_idle_fetches), because the local broker answers empty fetches at once instead of
long-polling — from 5 ms, doubling while it stays idle, up to 40 ms, so a record that arrives at an idle consumer
is still read within ~50 ms. Guards the aiokafka seam the pacing hooks into: an upgrade that moves it makes this
test fail, not the machine quietly burn a core."""

from __future__ import annotations

import asyncio
import time
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

from .fetch_requests import FetchRequests, record_fetch_requests
from .test_consumer_metrics import eventually
from .test_kafka_roundtrip import message


@pytest.fixture
def fetch_counter(monkeypatch: pytest.MonkeyPatch) -> FetchRequests:
    return record_fetch_requests(monkeypatch)


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
        kafka_topics: InfraSettings, fetch_counter: FetchRequests, chosen_pauses: list[float]) -> None:
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
        idle_rate = len(fetch_counter.topics) / 2
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


async def test_a_fetch_that_brought_records_hands_them_over_and_the_next_fetch_waits_the_shortest_pause(
        kafka_topics: InfraSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a moderate rate the fetch right after one that brought records finds nothing (an empty fetch of every
    partition per record-bearing fetch): the next one waits the shortest pause instead — and the records are handed
    to their reader before that pause, not after it. The shortest pause is made 300 ms here, so both show on a
    loaded machine: a record read long before the pause ended, and no fetch sent within it."""
    monkeypatch.setattr(kafka_seams, "FIRST_IDLE_PAUSE_MS", 300)
    unpaced = getattr(Fetcher._proc_fetch_request, "__wrapped__", Fetcher._proc_fetch_request)
    fetches: list[tuple[float, float, bool]] = []  # sent, answered, brought records

    async def timed(self: Fetcher, *args: Any) -> bool:
        sent = time.monotonic()
        brought: bool = await unpaced(self, *args)
        fetches.append((sent, time.monotonic(), brought))
        return brought

    monkeypatch.setattr(Fetcher, "_proc_fetch_request", timed)
    broker = make_broker(kafka_topics.kafka_bootstrap, "pacing-records", idle_fetch_backoff_ms=400)  # paces `timed`
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap,
                                group_id=f"pacing-{kafka_topics.namespace}", auto_offset_reset="earliest")
    await consumer.start()
    await broker.connect()
    publisher = EventPublisher(broker, kafka_topics.namespace)
    try:
        await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
        await asyncio.sleep(0.5)
        joined = time.monotonic()  # the fetches of the join and of positions being reset are left out
        handed_over = []
        for _ in range(3):
            await asyncio.sleep(0.5)
            await publisher.publish(message(), INBOUND_MESSAGES)
            await asyncio.wait_for(consumer.getone(), 10)
            read_at = time.monotonic()
            brought = [answered for _, answered, records in fetches if records]
            handed_over.append(read_at - brought[-1])
        await asyncio.sleep(0.5)
        assert max(handed_over) < 0.15, f"records read {handed_over} s after their fetch: after its pause"
        answered_with_records = [answered for sent, answered, records in fetches[:-1] if records and sent > joined]
        for answered in answered_with_records:
            next_sent = min(sent for sent, _, _ in fetches if sent > answered)
            assert next_sent - answered >= 0.29, f"a fetch {next_sent - answered:.3f} s after one with records"
        assert len(answered_with_records) >= 3
    finally:
        await broker.stop()
        await consumer.stop()
        pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)  # the process's bound again, for the tests after this one
