"""Kafka: topics read from their start to the end offsets they had when the replay began, outside any consumer
group (it commits nothing and moves no group's offsets), a batch of records at a time. What arrives after that end
the service's own consumers apply."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from parley_common.connections import Connections, kafka_client_options

FETCH_TIMEOUT_MS = 1000
# A partition whose end is not reached after this many empty fetches in a row holds no more readable records (an
# end offset past a transaction marker): stop instead of waiting for ever.
EMPTY_FETCHES_BEFORE_GIVING_UP = 5


async def replay(connections: Connections, topics: list[str], client_id: str,
                 max_records: int) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=connections.kafka_bootstrap, enable_auto_commit=False,
                                group_id=None, client_id=client_id, max_poll_records=max_records,
                                **kafka_client_options(connections))
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata
        partitions = [TopicPartition(topic, number) for topic in topics
                      for number in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # explicit offsets: seek_to_beginning only asks for a reset, which races the consumer's own first one
        for tp, start in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, start)
        empty_fetches = 0
        while empty_fetches < EMPTY_FETCHES_BEFORE_GIVING_UP:
            pending = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not pending:
                return
            batches = await consumer.getmany(*pending, timeout_ms=FETCH_TIMEOUT_MS, max_records=max_records)
            empty_fetches = 0 if batches else empty_fetches + 1
            records = [record for tp, got in batches.items() for record in got if record.offset < ends[tp]]
            if records:
                yield records
    finally:
        await consumer.stop()
