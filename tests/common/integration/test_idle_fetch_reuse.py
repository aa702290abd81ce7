"""An idle consumer sends its previous fetch request again and takes the answer already decoded from the same bytes
(parley_common.kafka_seams.reuse_unchanged_fetches), and still reads every record, in order, through positions that
move: records read, a seek back, a paused and resumed partition. Guards the aiokafka seams the reuse hooks into: an
upgrade that moves them makes the first test fail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest

from parley_common.kafka_seams import reuse_unchanged_fetches
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES


def record_fetches(consumer: AIOKafkaConsumer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """(request, decoded answer) of each fetch the started consumer sends from now on."""
    client = consumer._fetcher._client
    send = client.send
    fetches: list[tuple[Any, Any]] = []

    async def recording(node_id: int, request: Any, **options: Any) -> Any:
        response = await send(node_id, request, **options)
        if isinstance(request, FetchRequest):
            fetches.append((request, response))
        return response

    monkeypatch.setattr(client, "send", recording)
    return fetches


async def read(consumer: AIOKafkaConsumer, count: int) -> list[tuple[int, int, bytes]]:
    """The next `count` records as (partition, offset, value), each partition's in the order read."""
    taken: list[tuple[int, int, bytes]] = []
    while len(taken) < count:
        for records in (await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)).values():
            taken += [(record.partition, record.offset, record.value or b"") for record in records]
    assert len(taken) == count, taken
    return taken


async def test_an_idle_consumer_sends_its_previous_request_again_and_takes_the_same_decoded_answer(
        kafka_topics: InfraSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    reuse_unchanged_fetches()
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap,
                                group_id=f"reuse-{kafka_topics.namespace}")
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
        await asyncio.sleep(0.5)  # past the positions being reset
        fetches = record_fetches(consumer, monkeypatch)
        await asyncio.sleep(1)
        assert len(fetches) >= 5, fetches
        assert len({id(request) for request, _ in fetches}) == 1, "an unchanged fetch was built anew"
        assert len({id(answer) for _, answer in fetches}) == 1, "an unchanged answer was decoded anew"
        assert sum(len(partitions) for _, partitions in fetches[0][0].topics) == INBOUND_MESSAGES.partitions
    finally:
        await consumer.stop()


async def test_records_reach_an_idle_consumer_in_order_through_moved_positions_seeks_and_pauses(
        kafka_topics: InfraSettings) -> None:
    reuse_unchanged_fetches()
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_topics.kafka_bootstrap,
                                group_id=f"reuse-{kafka_topics.namespace}", auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.kafka_bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)  # joined and fetching
        sent: list[tuple[int, bytes]] = []
        for round_, partition in enumerate([3, 3, 7]):  # the same partition twice: its position moved in between
            await asyncio.sleep(0.3)  # idle: the same request sent again meanwhile
            values = [f"{round_}-{n}".encode() for n in range(5)]
            for value in values:
                await producer.send_and_wait(topic, value, partition=partition)
            sent += [(partition, value) for value in values]
            taken = await read(consumer, 5)
            assert [(p, value) for p, _, value in taken] == [(partition, value) for value in values]
        assert consumer.highwater(TopicPartition(topic, 3)) == 10  # the answers read after records are current

        await consumer.seek_to_beginning()
        again = await read(consumer, len(sent))
        for partition in (3, 7):
            assert [value for p, _, value in again if p == partition] == [value for p, value in sent if p == partition]

        paused, other = TopicPartition(topic, 3), TopicPartition(topic, 7)
        await asyncio.sleep(0.3)
        consumer.pause(paused)
        await producer.send_and_wait(topic, b"while paused", partition=3)
        await producer.send_and_wait(topic, b"beside it", partition=7)
        assert await read(consumer, 1) == [(7, 5, b"beside it")]
        await asyncio.sleep(0.3)
        consumer.resume(paused)
        assert await read(consumer, 1) == [(3, 10, b"while paused")]
        assert await consumer.position(paused) == 11 and await consumer.position(other) == 6
    finally:
        await producer.stop()
        await consumer.stop()
