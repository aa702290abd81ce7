"""From outside a consumer group, as an operator checks it: for every partition of the topics the group consumes,
how far its committed offset is behind the partition's end. A partition a dead member still holds stays behind."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def group_lag(bootstrap: str, group: str, topics: dict[str, int]) -> dict[TopicPartition, int]:
    """partition → records not yet committed by `group` (only partitions with some); `topics`: name → its
    number of partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="parley-tests-lag")
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="parley-tests-lag")
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(topic, number) for topic, count in topics.items() for number in range(count)]
        ends = await reader.end_offsets(partitions)
        lag = {partition: ends[partition] - (committed[partition].offset if partition in committed else 0)
               for partition in partitions}
        return {partition: behind for partition, behind in lag.items() if behind > 0}
    finally:
        await reader.stop()
        await admin.close()
