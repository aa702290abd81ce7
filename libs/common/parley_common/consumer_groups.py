"""How a service consumes: one consumer group per lane, each reading several topics in batches.

Each consumer costs a fetch loop, a group's heartbeats and rebalances; idle, a process's consumers share one fetch
(the local broker does not long-poll: `kafka_seams.IdleWatch`, docs/benchmarks.md). So a service runs one group
over all the topics whose handlers may wait behind each other, and a lane of its own only where one must not
(outbound's sends behind its projections, media's retries that sleep until their time). A batch holds records of
several topics: each topic's records go to its handler (`Reads`), all topics at once; the batch is committed only
after every record was handled or dead-lettered, and any other error redelivers the whole batch, which idempotent
handlers absorb. A member takes its next batch only when its last one is done; `members` consumers of a group in one
process share out its partitions, so a slow record holds up only its member's partitions."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Union, cast

from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from parley_common import tracing
from parley_common.channels import Channels
from parley_common.kafka import EventPublisher
from parley_common.kafka_seams import linger_batches, pace_lane
from parley_common.records import handle_parsed_batch, handle_record
from parley_common.topics import Topic

# How long one `getmany` waits for records before FastStream's loop asks again. It returns the moment a record
# arrives (kafka_seams.take_batches_without_idle_sleep), so this is not a latency: only how often an idle loop
# wakes up (50 → 1000 ms: an idle consumer of five topics 3.1 → 2.7 % of a core, docs/benchmarks.md).
BATCH_WAIT_MS = 1000


@dataclass(frozen=True)
class Reads:
    """One topic a group reads and what handles it.

    `handle` gets each parsed event (records of one partition in order, partitions at once; with `by_key`,
    records of one key in order and keys at once: for handlers that wait on the network), or with `whole_batch`
    the batch's events of this topic in one call (for handlers that write in bulk). `concurrency` bounds the
    partitions or keys in flight: each holds connections from finite database and cache pools. `formerly`: the
    groups (without the namespace) that read this topic before it joined this group; their committed offsets
    are adopted once (`parley_common.group_offsets`). `on_partitions_moved` is called whenever a member of the
    group in this process loses or gains partitions: a handler that remembers what it stored for the keys of its
    partitions forgets it then, since another replica may have written them meanwhile."""

    topic: Topic
    handle: Callable[[Any], Awaitable[None]]
    whole_batch: bool = False
    by_key: bool = False
    concurrency: int = 64
    formerly: tuple[str, ...] = ()
    on_partitions_moved: Callable[[], None] | None = None


@dataclass(frozen=True)
class ConsumerGroup:
    """A lane: one consumer group (`name` without the namespace) over several topics."""

    name: str
    reads: tuple[Reads, ...]
    members: int = 1
    max_records: int = 256
    why: str = ""  # why this lane is apart from the service's others (the AsyncAPI description says it)
    batch_wait_ms: int = BATCH_WAIT_MS
    # The longest pause of this lane's idle fetches (None: the process's PARLEY_KAFKA_IDLE_FETCH_BACKOFF_MS): the
    # most a record arriving at it idle waits, for a lane whose records may wait that long (`pace_idle_lanes`).
    idle_pause_ms: int | None = None
    # A batch that is not full waits this long for more records (kafka_seams.linger_batches): a lane writing in bulk
    # whose records may wait, so that a low rate still shares its round trips. 0: handled as soon as fetched.
    linger_ms: int = 0

    def full_name(self, namespace: str) -> str:
        """Consumer groups are cluster-wide like topics, so the namespace prefixes them too: deployments (and test
        runs) sharing a cluster must never join each other's groups and keep rebalancing them."""
        return f"{namespace}.{self.name}" if namespace else self.name


@dataclass
class _Registered:
    groups: list[tuple[str, ConsumerGroup]] = field(default_factory=list)  # (namespace, group)
    documentation: KafkaBroker | None = None


_registry: weakref.WeakKeyDictionary[KafkaBroker, _Registered] = weakref.WeakKeyDictionary()


def consume_group(broker: KafkaBroker, group: ConsumerGroup, *, namespace: str, publisher: EventPublisher,
                  service: str, channels: Channels | None) -> None:
    """Register `group`'s members on `broker`, from the earliest offset (a group without committed offsets
    reads everything), committing only after a batch is done (NACK redelivers it). A topic read twice (two
    `Reads`: say, one whole batch written in bulk and one event by event) gets both at once."""
    by_topic: dict[str, list[_TopicHandler]] = {}
    for reads in group.reads:
        by_topic.setdefault(reads.topic.name(namespace), []).append(_TopicHandler(reads, publisher, service, channels))

    async def on_batch(message: KafkaMessage) -> None:
        records: dict[str, list[Any]] = {}
        for record in _records_of(message):
            records.setdefault(record.topic, []).append(record)
        results = await asyncio.gather(*(handler.take(batch) for topic, batch in records.items()
                                         for handler in by_topic[topic]), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    on_batch.__name__ = f"{service}_{group.name.replace('.', '_').replace('-', '_')}"
    full_name = group.full_name(namespace)
    for _ in range(group.members):
        subscriber = broker.subscriber(
            *by_topic,
            group_id=full_name,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            batch=True,
            max_records=group.max_records,
            batch_timeout_ms=group.batch_wait_ms,
            decoder=_message_itself,
            include_in_schema=False,  # described topic by topic in the documentation broker below
            listener=_listener_of(group),
        )
        if group.linger_ms:
            linger_batches(subscriber, group.linger_ms)
        subscriber(on_batch)
    registered = _registry.setdefault(broker, _Registered())
    registered.groups.append((namespace, group))
    _document(broker, registered, group, namespace)


class _PartitionsMoved(ConsumerRebalanceListener):  # type: ignore[misc, unused-ignore]
    def __init__(self, callbacks: list[Callable[[], None]]) -> None:
        self._callbacks = callbacks

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._moved()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._moved()

    def _moved(self) -> None:
        for callback in self._callbacks:
            callback()


def _listener_of(group: ConsumerGroup) -> ConsumerRebalanceListener | None:
    callbacks = [reads.on_partitions_moved for reads in group.reads if reads.on_partitions_moved is not None]
    return _PartitionsMoved(callbacks) if callbacks else None


def pace_idle_lanes(broker: KafkaBroker) -> None:
    """Once `broker` started: each group with its own `idle_pause_ms` gets it on its consumers (kafka_seams)."""
    paces = {group.full_name(namespace): group.idle_pause_ms for namespace, group in groups_of(broker)
             if group.idle_pause_ms is not None}
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        pause = paces.get(getattr(subscriber, "group_id", None) or "")
        if consumer is not None and pause is not None:
            pace_lane(consumer, pause)


def groups_of(broker: KafkaBroker) -> list[tuple[str, ConsumerGroup]]:
    """The groups registered on `broker`, each with its namespace."""
    registered = _registry.get(broker)
    return list(registered.groups) if registered else []


def documentation_brokers(broker: KafkaBroker) -> list[KafkaBroker]:
    """A broker that is never started, with one subscriber per (topic, group) carrying the topic's model: the
    AsyncAPI document describes each topic's records (FastStream gives every topic of a subscriber one model)."""
    registered = _registry.get(broker)
    return [registered.documentation] if registered and registered.documentation else []


def _document(broker: KafkaBroker, registered: _Registered, group: ConsumerGroup, namespace: str) -> None:
    if registered.documentation is None:
        spec = broker.specification
        registered.documentation = KafkaBroker(list(spec.url), security=spec.security, apply_types=False)
    documentation = registered.documentation
    full_name = group.full_name(namespace)
    members = f" {group.members} consumers of this group in each process share out the partitions." \
        if group.members > 1 else ""
    for reads in {reads.topic: reads for reads in reversed(group.reads)}.values():  # a topic once, as first read
        async def describe(message: Any) -> None: ...

        payload: Any = reads.topic.payload
        describe.__annotations__ = {"message": list[payload] if reads.whole_batch else payload, "return": None}
        describe.__name__ = f"{full_name}_{reads.topic.base_name}".replace(".", "_").replace("-", "_")
        name = reads.topic.name(namespace)
        documentation.subscriber(name, group_id=full_name, title=f"{name}:{full_name}",
                                 description=" ".join(part for part in (reads.topic.description, group.why, members)
                                                      if part))(describe)


class _TopicHandler:
    """A batch's records of one topic, handled as its `Reads` says."""

    def __init__(self, reads: Reads, publisher: EventPublisher, service: str, channels: Channels | None) -> None:
        self._reads = reads
        self._publisher = publisher
        self._service = service
        self._channels = channels
        self._slots = asyncio.Semaphore(reads.concurrency)  # shared by the group's members in this process

    async def take(self, records: list[Any]) -> None:
        if self._reads.whole_batch:
            await self._whole(records)
            return
        in_order: dict[Hashable, list[Any]] = {}
        for record in records:
            in_order.setdefault((record.key or b"") if self._reads.by_key else record.partition, []).append(record)
        results = await asyncio.gather(*(self._in_order(group) for group in in_order.values()),
                                       return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def _in_order(self, records: list[Any]) -> None:
        async with self._slots:
            for record in records:
                await handle_record(_view_of(record), self._reads.topic, self._reads.handle, self._publisher,
                                    self._service, self._channels)

    async def _whole(self, records: list[Any]) -> None:
        """Records that do not parse are dead-lettered with their bytes and the rest goes on (records.py)."""
        parsed: list[tuple[KafkaMessage, Any]] = []
        topic = self._reads.topic
        with tracing.processing_batch(topic.name(self._publisher.namespace), records):
            for record in records:
                view = _view_of(record)

                async def collect(event: Any, view: KafkaMessage = view) -> None:
                    parsed.append((view, event))

                await handle_record(view, topic, collect, self._publisher, self._service, self._channels,
                                    batched=True)
            if parsed:
                await handle_parsed_batch(parsed, topic, self._reads.handle, self._publisher, self._service)


def follow_from_now(broker: KafkaBroker, topics: tuple[Topic, ...], namespace: str,
                    handle: Callable[[KafkaMessage], Awaitable[None]], title: str, description: str) -> Follower:
    """One consumer outside any group reading `topics`, from the newest record on, never committing: every replica
    sees every new record (fan-out to live screens). `handle` gets the message itself (its record names the
    topic: `message.raw_message.topic`)."""
    payload = topics[0].payload if len(topics) == 1 else Union[tuple(topic.payload for topic in topics)]  # noqa: UP007
    handle.__annotations__ = {"message": payload, "return": None}  # for the AsyncAPI document only
    subscriber = broker.subscriber(*(topic.name(namespace) for topic in topics), auto_offset_reset="latest",
                                   title=title, description=description, decoder=_message_itself)
    subscriber(handle)
    return Follower(subscriber)


class Follower:
    """A consumer from `follow_from_now`, which may stop fetching while nobody needs its records: idle, it would
    poll the local broker ~25 times a second like any consumer (docs/benchmarks.md, "What idle is made of")."""

    def __init__(self, subscriber: Any) -> None:
        self._subscriber = subscriber
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> bool:
        """Stop fetching; True when it was fetching until now (False before the consumer has its partitions)."""
        consumer = self._subscriber.consumer
        partitions = consumer.assignment() if consumer is not None else set()
        if self._paused or not partitions:
            return False
        consumer.pause(*partitions)
        self._paused = True
        return True

    async def resume_from_now(self) -> None:
        """Fetch again, from the newest record (what arrived meanwhile is skipped): returns once the position is
        there, so a record published after it returned is delivered."""
        consumer = self._subscriber.consumer
        if not self._paused or consumer is None:
            return
        self._paused = False
        partitions = list(consumer.assignment())
        consumer.resume(*partitions)
        await consumer.seek_to_end(*partitions)


async def _message_itself(message: KafkaMessage) -> KafkaMessage:
    """The decoder of every subscription: the handler gets the message (body, headers, record), not a decoded
    body, and parses the body with the topic's model (see `parley_common.kafka.make_broker`)."""
    return message


@dataclass(frozen=True)
class _RecordView:
    """One record of a batch, shaped like the single-record message that `handle_record` reads."""

    body: bytes
    headers: dict[str, Any]
    raw_message: Any
    message_id: str


def _records_of(batch: KafkaMessage) -> tuple[Any, ...]:
    raw = batch.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def _view_of(record: Any) -> KafkaMessage:
    view = _RecordView(record.value or b"", dict(record.headers or ()), record,
                       f"{record.topic}-{record.partition}-{record.offset}")
    return cast(KafkaMessage, view)
