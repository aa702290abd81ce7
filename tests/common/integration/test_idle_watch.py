"""Consumers idle a while are watched together (parley_common.kafka_seams.IdleWatch): one fetch per bound asks the
broker for the partitions of all of a process's idle consumers, and only a consumer with something at one of its
partitions fetches for itself again. Guards the aiokafka seams the watcher hooks into (the fetcher's
`_proc_fetch_request`, `_notify`, `_wait_consume_future`): an upgrade that moves them makes these tests fail."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher

from parley_common import kafka_seams
from parley_common.kafka_seams import IDLE_FETCH_BACKOFF_MS, pace_idle_fetches, reuse_unchanged_fetches
from parley_common.settings import InfraSettings
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES

from .fetch_requests import FetchRequests, record_fetch_requests
from .test_consumer_metrics import eventually


@pytest.fixture
def fetches_sent(monkeypatch: pytest.MonkeyPatch) -> FetchRequests:
    return record_fetch_requests(monkeypatch)


def skip_if_the_broker_long_polls(sent: FetchRequests) -> None:
    """Against Kafka an empty fetch is held for `fetch_max_wait_ms`: nothing parks there (`kafka_seams.parks`),
    and an idle consumer costs nothing to begin with."""
    if sent.held_by_the_broker():
        pytest.skip("the broker holds empty fetches (a long poll): idle consumers are not watched there")


async def started(topic: str, group: str, bootstrap: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest")
    await consumer.start()
    await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
    return consumer


async def read_one(consumer: AIOKafkaConsumer) -> bytes:
    async with asyncio.timeout(30):
        while True:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                assert len(records) == 1, records
                return records[0].value or b""


async def test_two_idle_consumers_are_asked_with_one_fetch_and_only_the_one_with_a_record_wakes(
        kafka_topics: InfraSettings, fetches_sent: FetchRequests) -> None:
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    reuse_unchanged_fetches()
    bootstrap, namespace = kafka_topics.kafka_bootstrap, kafka_topics.namespace
    quiet, busy = INBOUND_MESSAGES.name(namespace), CONTACTS_EVENTS.name(namespace)
    consumers = [await started(quiet, f"watch-quiet-{namespace}", bootstrap),
                 await started(busy, f"watch-busy-{namespace}", bootstrap)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await asyncio.sleep(0.5)  # idle long enough for the pauses to reach their bound
        fetches_sent.clear()
        await asyncio.sleep(2)
        skip_if_the_broker_long_polls(fetches_sent)
        both = frozenset({quiet, busy})
        assert fetches_sent.topics and set(fetches_sent.topics) == {both}, "idle consumers fetched for themselves"
        rate = len(fetches_sent.topics) / 2
        assert rate <= 30, f"{rate:.0f} fetches/s for two idle consumers"

        picked_up = []
        for n in range(5):
            await asyncio.sleep(0.3)
            fetches_sent.clear()
            await producer.send_and_wait(busy, f"record {n}".encode())
            stored = time.monotonic()
            assert await read_one(consumers[1]) == f"record {n}".encode()
            picked_up.append(time.monotonic() - stored)
            assert frozenset({quiet}) not in fetches_sent.topics, "the consumer without a record was woken"
            assert frozenset({busy}) in fetches_sent.topics  # the woken one fetched its record itself
        print(f"records read {[round(wait * 1000) for wait in picked_up]} ms after stored")
    finally:
        await producer.stop()
        for consumer in consumers:
            await consumer.stop()


def test_on_uvloop_the_watcher_sleeps_once_a_bound(kafka_topics: InfraSettings, fetches_sent: FetchRequests,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The services run on uvloop (uvicorn's choice), whose clock and timers count whole milliseconds: a watcher
    that slept again for what was left of its due time spun through ~70 sleeps a bound
    (`kafka_seams.LOOP_CLOCK_STEP`)."""
    wakeups = [0]
    resolve = kafka_seams._resolve

    def counted(future: asyncio.Future[None]) -> None:
        wakeups[0] += 1
        resolve(future)

    monkeypatch.setattr(kafka_seams, "_resolve", counted)  # the watcher's timer; no consumer has a record to wake for

    async def idle_a_while() -> None:
        pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
        reuse_unchanged_fetches()
        bootstrap, namespace = kafka_topics.kafka_bootstrap, kafka_topics.namespace
        consumers = [await started(INBOUND_MESSAGES.name(namespace), f"watch-uvloop-a-{namespace}", bootstrap),
                     await started(CONTACTS_EVENTS.name(namespace), f"watch-uvloop-b-{namespace}", bootstrap)]
        try:
            await asyncio.sleep(0.5)  # idle long enough for the pauses to reach their bound
            fetches_sent.clear()
            wakeups[0] = 0
            await asyncio.sleep(2)
        finally:
            for consumer in consumers:
                await consumer.stop()

    uvloop.run(idle_a_while())
    skip_if_the_broker_long_polls(fetches_sent)
    asks = len(fetches_sent.topics)
    assert asks and wakeups[0] <= 2 * asks, f"the watcher woke {wakeups[0]} times for {asks} fetches"


async def test_a_parked_consumer_wakes_when_a_partition_it_did_not_ask_for_is_given_back(
        kafka_topics: InfraSettings) -> None:
    """`getone` leaves a drained partition's result in the fetcher until its next call, so the consumer parks
    without that partition; the next call drops it and notifies the fetch loop — which must wake the parked fetch,
    or the partition's next record would wait for a record elsewhere."""
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    reuse_unchanged_fetches()
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = await started(topic, f"watch-drained-{kafka_topics.namespace}", kafka_topics.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.kafka_bootstrap)
    await producer.start()
    try:
        for n in range(3):
            await asyncio.sleep(0.5)  # parked, the partition's drained result still held
            await producer.send_and_wait(topic, f"again {n}".encode(), partition=5)
            record = await asyncio.wait_for(consumer.getone(), 5)
            assert record.value == f"again {n}".encode()
    finally:
        await producer.stop()
        await consumer.stop()


async def test_a_consumer_stopped_while_parked_stops_and_the_watcher_ends(
        kafka_topics: InfraSettings, fetches_sent: FetchRequests) -> None:
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    reuse_unchanged_fetches()
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = await started(topic, f"watch-stop-{kafka_topics.namespace}", kafka_topics.kafka_bootstrap)
    try:
        await asyncio.sleep(0.5)
        skip_if_the_broker_long_polls(fetches_sent)
        watch = kafka_seams._watches[asyncio.get_running_loop()]
        await eventually(lambda: any(fetcher is consumer._fetcher for fetcher, _ in watch._parked), 5)
    finally:
        await asyncio.wait_for(consumer.stop(), 5)
    assert not watch._parked
    await eventually(lambda: watch._task is None or watch._task.done(), 5)


async def test_without_reused_requests_an_idle_consumer_pauses_as_before_and_never_spins(
        kafka_topics: InfraSettings, fetches_sent: FetchRequests, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parking needs `reuse_unchanged_fetches`'s note of what each request was built with (`make_broker` applies
    both); a process that paces without it (a bench's reader) keeps pausing, one fetch per bound at most."""
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    reuse_unchanged_fetches()
    monkeypatch.setattr(Fetcher, "_get_actions_per_node", Fetcher._get_actions_per_node.__wrapped__)
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = await started(topic, f"watch-unnoted-{kafka_topics.namespace}", kafka_topics.kafka_bootstrap)
    try:
        await asyncio.sleep(0.5)
        fetches_sent.clear()
        await asyncio.sleep(2)
        assert 0 < len(fetches_sent.topics) / 2 <= 30, f"{len(fetches_sent.topics) / 2:.0f} fetches/s"
        watch = kafka_seams._watches.get(asyncio.get_running_loop())
        assert watch is None or not watch._parked
    finally:
        await consumer.stop()


async def test_a_consumer_stopped_while_its_fetch_is_out_stops_and_does_not_park(kafka_topics: InfraSettings) -> None:
    """aiokafka's fetch answers its cancellation (the consumer stopping, or its partitions taken away) by returning
    as if nothing came. The fetch whose empty answer brings a consumer's pause to its bound parks it; cancelled,
    it parked as well, nothing woke it, and the consumer's `stop` waited for it for ever."""
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    reuse_unchanged_fetches()
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    # without a group: its `stop` closes the fetcher at once (a group's commit and leaving first can outlast the
    # bound, and a fetch out longer than the bound does not park)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.kafka_bootstrap)
    await producer.start()
    fetcher, client = consumer._fetcher, consumer._client
    send = client.send
    fetch_out = asyncio.Event()

    async def held_when_the_fetcher_would_park(node_id: int, request: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        its_own = task is not None and task.get_coro().__qualname__.endswith("_proc_fetch_request")  # not the watcher's
        if its_own and getattr(fetcher, "_parley_idle_pause", 0) * 2 >= IDLE_FETCH_BACKOFF_MS / 1000:
            fetch_out.set()
            await asyncio.Event().wait()  # a broker slow to answer: the fetch is out when the consumer stops
        return await send(node_id, request, **kwargs)

    try:
        await producer.send_and_wait(topic, b"read, then idle")
        assert await read_one(consumer) == b"read, then idle"
        client.send = held_when_the_fetcher_would_park  # type: ignore[method-assign]
        await asyncio.wait_for(fetch_out.wait(), 10)
        stopping = time.monotonic()
        # (a `wait_for` that ran out would cancel the parked fetch too, and `stop` return: its time tells)
        await asyncio.wait_for(consumer.stop(), 10)
        assert time.monotonic() - stopping < 5, "the consumer's stop waited for its parked fetch"
    finally:
        await producer.stop()
