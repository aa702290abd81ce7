"""The common consumer metrics on the real broker: lag grows while a handler is stuck and falls back to zero once
it is done; records are counted by outcome (handled, dead_lettered, failed) with a dead letter's reason."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from known_channels import TEST_CHANNELS
from prometheus_client import REGISTRY

from parley_common import metrics
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher, make_broker
from parley_common.records import PermanentFailure
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from tests.common.integration.test_kafka_roundtrip import message

TOPIC = INBOUND_MESSAGES.base_name


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def test_lag_grows_while_a_handler_is_stuck_and_outcomes_are_counted(kafka_topics: InfraSettings) -> None:
    service = f"metrics-{kafka_topics.namespace}"  # a label of its own: other tests share the registry
    broker = make_broker(kafka_topics.kafka_bootstrap, "metrics-test")
    publisher = EventPublisher(broker, kafka_topics.namespace, service)
    release, handled = asyncio.Event(), []

    async def handle(event: MessageReceived) -> None:
        text = event.parts[0].text  # type: ignore[union-attr]
        if text == "refuse":
            raise PermanentFailure("refused_by_test")
        await release.wait()
        handled.append(text)

    consume_group(broker, ConsumerGroup("lagging", (Reads(INBOUND_MESSAGES, handle),)),
                  namespace=kafka_topics.namespace, publisher=publisher, service=service, channels=TEST_CHANNELS)
    await broker.start()
    consumers = [(s.group_id, s.consumer) for s in broker.subscribers]
    try:
        await publisher.publish(message(text="refuse"), INBOUND_MESSAGES)
        for number in range(5):  # one customer: one partition, handled in order, the first one stuck
            await publisher.publish(message(text=f"m{number}"), INBOUND_MESSAGES)

        async def lag() -> float:
            await metrics.sample_lag(service, consumers, kafka_topics.namespace)
            return value("parley_consumer_lag_records", service=service, topic=TOPIC, group="lagging")

        deadline = asyncio.get_running_loop().time() + 30
        while await lag() < 4:  # the stuck record and the four behind it (fetched, not consumed)
            assert asyncio.get_running_loop().time() < deadline, "lag never showed the waiting records"
            await asyncio.sleep(0.2)
        release.set()
        await eventually(lambda: len(handled) == 5)
        deadline = asyncio.get_running_loop().time() + 30
        while await lag() > 0:
            assert asyncio.get_running_loop().time() < deadline, "lag never came back to zero"
            await asyncio.sleep(0.2)
    finally:
        await asyncio.wait_for(broker.stop(), 30)

    assert value("parley_consumer_records_total", service=service, topic=TOPIC, outcome="handled") == 5
    assert value("parley_consumer_records_total", service=service, topic=TOPIC, outcome="dead_lettered") == 1
    assert value("parley_dead_letters_total", service=service, topic=TOPIC, reason="refused_by_test") == 1
    assert value("parley_consumer_handler_seconds_count", service=service, topic=TOPIC) == 6
    assert value("parley_events_published_total", service=service, topic=TOPIC, event_type="MessageReceived") == 6
