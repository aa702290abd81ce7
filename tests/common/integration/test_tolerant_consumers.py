"""Every consumer, on the real broker, handles an event that a newer producer wrote with a field it does not know:
one record of every event type of every topic, each object in it (nested ones too) carrying an extra field, is
published as raw bytes and reaches its handler through one consumer group over every topic
(parley_common.consumer_groups and records.handle_record, the path every service's and the bot's consumers take)
— none goes to the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import ALL_TOPICS, Topic
from tests.common.unit.test_event_compatibility import ADDED_LATER, document, topic_models


async def test_every_consumer_handles_an_event_with_a_field_it_does_not_know(kafka_topics: InfraSettings) -> None:
    broker = make_broker(kafka_topics.kafka_bootstrap, "tolerant-test")
    publisher = EventPublisher(broker, kafka_topics.namespace, "tolerant")
    expected = {(topic.base_name, model.__name__) for topic, model in topic_models()}
    handled: set[tuple[str, str]] = set()
    all_handled = asyncio.Event()

    def handler(topic: Topic) -> Callable[[Any], Awaitable[None]]:
        async def handle(event: Any) -> None:
            handled.add((topic.base_name, type(event).__name__))
            if handled >= expected:
                all_handled.set()
        return handle

    # no channel file: the events' channels are the samples' placeholders
    consume_group(broker, ConsumerGroup("tolerant", tuple(Reads(topic, handler(topic)) for topic in ALL_TOPICS)),
                  namespace=kafka_topics.namespace, publisher=publisher, service="tolerant", channels=None)
    await broker.start()
    try:
        for topic, model in topic_models():
            newer = document(model, extra=True)
            assert ADDED_LATER in json.loads(newer)
            await broker.publish(newer, topic=topic.name(kafka_topics.namespace), key=b"k")  # compacted ones need one
        try:
            await asyncio.wait_for(all_handled.wait(), 90)
        except TimeoutError:
            raise AssertionError(f"not handled (dead-lettered?): {sorted(expected - handled)}") from None
    finally:
        await asyncio.wait_for(broker.stop(), 30)
    assert handled == expected
