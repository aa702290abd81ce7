"""A service moving to a new consumer group starts it where its former groups stopped (parley_common.group_offsets),
on the broker the tests run against: records the former groups had handled are not handled again, a record one of
them had not handled yet is, and adopting is done once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from known_channels import TEST_CHANNELS

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.inbound import MessageReceived
from parley_common.group_offsets import adopt_former_offsets, commit_offsets
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

from .test_kafka_roundtrip import message


def customer_message(customer: str) -> MessageReceived:
    return message(text=customer).model_copy(update={"external_user_id": customer, "provider_message_id": customer})


async def partitions_of(bootstrap: str, topic: str) -> tuple[dict[str, TopicPartition], dict[TopicPartition, int]]:
    """Where each record of `topic` is (its customer → partition), and each partition's end offset."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, number) for number in reader.partitions_for_topic(topic) or ()]
        if not partitions:
            await reader._client.force_metadata_update()  # the topic was created just before
            partitions = [TopicPartition(topic, number) for number in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        where: dict[str, TopicPartition] = {}
        while sum(ends.values()) > len(where):
            for partition, records in (await reader.getmany(timeout_ms=1000)).items():
                for record in records:
                    where[MessageReceived.model_validate_json(record.value).external_user_id] = partition
        return where, ends
    finally:
        await reader.stop()


async def test_a_new_group_starts_where_its_former_groups_stopped(kafka_topics: InfraSettings) -> None:
    bootstrap, namespace = kafka_topics.kafka_bootstrap, kafka_topics.namespace
    topic = INBOUND_MESSAGES.name(namespace)
    broker = make_broker(bootstrap, "group-offsets")
    publisher = EventPublisher(broker, namespace)
    await broker.connect()
    customers: list[str] = []
    for number in range(40):  # three customers on three different partitions
        customers.append(f"1555000{number:04d}")
        await publisher.publish(customer_message(customers[-1]), INBOUND_MESSAGES)
        where, ends = await partitions_of(bootstrap, topic)
        chosen = {where[customer]: customer for customer in customers}
        if len(chosen) >= 3:
            break
    handled_by_both, not_yet_by_one, never_by_one = list(chosen.values())[:3]
    # "old-projection" handled everything; "old-other" read the same topic, but had not yet handled one record, and
    # had never committed another's partition
    await commit_offsets(bootstrap, f"{namespace}.old-projection",
                         {partition: end for partition, end in ends.items() if end})
    await commit_offsets(bootstrap, f"{namespace}.old-other",
                         {partition: end - (partition == where[not_yet_by_one]) for partition, end in ends.items()
                          if end and partition != where[never_by_one]})

    handled: list[str] = []

    async def handle(event: MessageReceived) -> None:
        handled.append(event.external_user_id)

    consume_group(broker, ConsumerGroup("events", (
        Reads(INBOUND_MESSAGES, handle, formerly=("old-projection", "old-other")),)),
        namespace=namespace, publisher=publisher, service="test", channels=TEST_CHANNELS)
    adopted = await adopt_former_offsets(broker, bootstrap)
    await broker.start()
    try:
        after = customer_message("15559990000")
        await publisher.publish(after, INBOUND_MESSAGES)
        deadline = time.monotonic() + 30
        while after.external_user_id not in handled and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # anything else the group would read comes with or before it
    finally:
        await broker.stop()

    assert adopted == len([end for end in ends.values() if end]) - 1  # all but the partition one never committed
    assert not_yet_by_one in handled and after.external_user_id in handled
    # a partition one former group never committed is read from the earliest record, as that group would have
    assert never_by_one in handled
    assert handled_by_both not in handled
    assert await adopt_former_offsets(broker, bootstrap) == 0  # once: the group has its own offsets now


async def test_a_service_without_former_groups_asks_the_broker_nothing(infra_settings: InfraSettings) -> None:
    broker = make_broker("127.0.0.1:1", "group-offsets")  # nothing listens there

    async def handle(event: Any) -> None:
        raise AssertionError(event)

    consume_group(broker, ConsumerGroup("events", (Reads(INBOUND_MESSAGES, handle),)),
                  namespace=infra_settings.namespace, publisher=EventPublisher(broker), service="test", channels=None)
    assert await adopt_former_offsets(broker, "127.0.0.1:1") == 0
