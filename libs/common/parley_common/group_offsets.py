"""A running deployment moving to new consumer groups starts them where its former groups stopped.

Until issue 17 every service read each topic in a group of its own (router `parley-router.<topic>`, outbound
`outbound-windows`, …); now one group reads several topics (`parley_common.consumer_groups`). A new group has no
committed offsets and would read every topic from its earliest record — days of records handled again, which the
idempotent handlers absorb but an operator does not expect. So before its consumers join, a replica gives its new
groups the former groups' committed offsets, partition by partition:

- only partitions the new group has no offset for: adopting is done once, and a restart changes nothing;
- only when every former group that read the topic has committed that partition (outbound kept two projections
  of contacts' events in two groups): the lowest of their offsets, so neither projection misses a record; a
  partition one of them never committed is read from the earliest record, as that group would have;
- not while the new group has members: the replica that started it adopted before joining.

The former groups stay on the broker (a rollback resumes from them); delete them once the new release runs
(docs/deploy.md). During a rolling update old and new pods both handle the records that arrive meanwhile, once
in each group: the handlers are idempotent on event ids."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from faststream.kafka import KafkaBroker

from parley_common.consumer_groups import ConsumerGroup, groups_of

log = structlog.get_logger(__name__)
EMPTY_GROUP_STATES = ("", "Empty", "Dead")


async def adopt_former_offsets(broker: KafkaBroker, bootstrap_servers: str, **client_options: Any) -> int:
    """Before `broker` starts: give each of its groups the former groups' offsets (see the module); returns the
    partitions adopted. A failure keeps the service from starting: a new group would otherwise read from the
    earliest record. `client_options`: connections.kafka_client_options."""
    pending = [(namespace, group) for namespace, group in groups_of(broker)
               if any(reads.formerly for reads in group.reads)]
    if not pending:
        return 0
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    await admin.start()
    adopted = 0
    try:
        for namespace, group in pending:
            offsets = await _offsets_to_adopt(admin, namespace, group)
            if offsets:
                await commit_offsets(bootstrap_servers, group.full_name(namespace), offsets, **client_options)
                log.info("former_offsets_adopted", group=group.full_name(namespace), partitions=len(offsets))
                adopted += len(offsets)
    finally:
        await admin.close()
    return adopted


async def _offsets_to_adopt(admin: AIOKafkaAdminClient, namespace: str,
                            group: ConsumerGroup) -> dict[TopicPartition, int]:
    name = group.full_name(namespace)
    if await _has_members(admin, name):
        return {}
    own = {partition for partition, meta in (await admin.list_consumer_group_offsets(name)).items()
           if meta.offset >= 0}
    former: dict[str, dict[TopicPartition, int]] = {}
    adopt: dict[TopicPartition, int] = {}
    formerly_by_topic: dict[str, list[str]] = {}
    for reads in group.reads:  # a topic read twice in the group: its former groups together
        formerly_by_topic.setdefault(reads.topic.name(namespace), []).extend(reads.formerly)
    for topic, formerly_groups in formerly_by_topic.items():
        committed = []
        for formerly in formerly_groups:
            former_name = ConsumerGroup(formerly, ()).full_name(namespace)
            if former_name not in former:
                former[former_name] = {partition: meta.offset for partition, meta in
                                       (await admin.list_consumer_group_offsets(former_name)).items()
                                       if meta.offset >= 0}
            committed.append({partition: offset for partition, offset in former[former_name].items()
                              if partition.topic == topic})
        if not committed:
            continue
        everywhere = set.intersection(*(set(offsets) for offsets in committed)) - own
        adopt |= {partition: min(offsets[partition] for offsets in committed) for partition in everywhere}
    return adopt


async def _has_members(admin: AIOKafkaAdminClient, group: str) -> bool:
    for response in await admin.describe_consumer_groups([group]):  # one group per call (the local broker)
        for described in response.groups:  # (error, group, state, protocol type, protocol, members, ...)
            if described[2] not in EMPTY_GROUP_STATES or described[5]:
                return True
    return False


async def commit_offsets(bootstrap_servers: str, group: str, offsets: dict[TopicPartition, int],
                         **client_options: Any) -> None:
    """Commit `offsets` for `group` with a consumer that never joins it: assigned partitions, it commits as a group
    without members does (what `kafka-consumer-groups.sh --reset-offsets` does)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False,
                                **client_options)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({partition: OffsetAndMetadata(offset, "") for partition, offset in offsets.items()})
    finally:
        await consumer.stop()
