"""The requests topic's consumers hand whole batches to the send pipeline (parley_common's `subscribe_batch`
calls its handler once per record; the send pipeline needs the batch to write it in bulk).

Several consumers of one group in the process (`consumers`): the topic's partitions are shared out among them, so
while one records and announces its batch's outcomes and loads the next, another is calling providers — a
rate-limited channel whose messages spread over partitions does not idle between batches. A conversation's
commands stay in one partition, so in one consumer, in order.

Each record is parsed the way `parley_common.kafka.consume` parses any record: an unparseable one is dead-lettered
with its original bytes and the rest of the batch goes on. The batch is committed only after the handler returned;
any exception redelivers the whole batch, which the idempotent send pipeline absorbs (commit after store)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage as KafkaMessageAnnotation
from faststream.kafka.message import KafkaMessage

from parley_common.kafka import EventPublisher, _RecordView, consume
from parley_common.topics import Topic


def subscribe_send_batches(broker: KafkaBroker, topic: Topic, *, group_id: str, namespace: str,
                           handle: Callable[[list[Any]], Awaitable[None]], publisher: EventPublisher, service: str,
                           max_records: int, consumers: int = 1, batch_timeout_ms: int = 50) -> None:
    async def on_batch(message: KafkaMessageAnnotation) -> None:
        records = message.raw_message if isinstance(message.raw_message, tuple) else (message.raw_message,)
        events: list[Any] = []

        async def collect(event: Any) -> None:
            events.append(event)

        for record in records:
            view = _RecordView(record.value or b"", dict(record.headers or ()), record,
                               f"{record.topic}-{record.partition}-{record.offset}")
            await consume(cast(KafkaMessage, view), topic, collect, publisher, service)
        if events:
            await handle(events)

    on_batch.__name__ = f"{service}_{topic.base_name.replace('.', '_')}_batches"
    group = f"{namespace}.{group_id}" if namespace else group_id  # as parley_common.kafka names groups
    for number in range(1, consumers + 1):
        broker.subscriber(topic.name(namespace), group_id=group, auto_offset_reset="earliest",
                          ack_policy=AckPolicy.NACK_ON_ERROR, title=f"{topic.name(namespace)}:{group}#{number}",
                          description=topic.description, batch=True, max_records=max_records,
                          batch_timeout_ms=batch_timeout_ms)(on_batch)
