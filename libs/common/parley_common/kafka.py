"""Kafka: the broker factory, the event publisher, and topic creation. Consuming lives in
`parley_common.consumer_groups` (one consumer group per service lane) and `parley_common.records` (one record:
parse, check, handle or dead-letter); the patches of library internals in `parley_common.kafka_seams`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker

from parley_common import metrics, round_trips, tracing
from parley_common.cloudevents import headers_for
from parley_common.events.envelope import Envelope
from parley_common.idempotence import sent_again_if_sequence_lost
from parley_common.kafka_seams import (
    IDLE_FETCH_BACKOFF_MS,
    pace_idle_fetches,
    reuse_unchanged_fetches,
    take_batches_without_idle_sleep,
)
from parley_common.logging import BROKER_LOGGER
from parley_common.rejoin import rejoin_on_empty_assignment, rejoin_on_empty_protocol
from parley_common.topics import ALL_TOPICS, Topic

log = structlog.get_logger(__name__)


def make_broker(bootstrap_servers: str, client_id: str, *, idle_fetch_backoff_ms: int = IDLE_FETCH_BACKOFF_MS,
                **options: Any) -> KafkaBroker:
    """A FastStream Kafka broker whose producer waits for all in-sync replicas and never duplicates on retry.
    FastStream's per-record "Received"/"Processed" lines are logged at DEBUG: at INFO they cost ~3 % of a busy
    consumer's CPU and drown the service's own logs (failures are logged by `parley_common.records`).

    Without FastDepends (`apply_types=False`): our handlers take the message itself (`parley_common.consumer_groups`
    gives them a decoder that hands it over) and parse it with the topic's model. Resolving the message through
    FastDepends ran a worker thread per delivery: ~0.45 ms of CPU per record, about half of consuming it (measured
    with a trivial handler, 3,000 records: 908-1,036 → 459-533 µs per record)."""
    pace_idle_fetches(idle_fetch_backoff_ms)
    reuse_unchanged_fetches()
    take_batches_without_idle_sleep()
    rejoin_on_empty_assignment()
    rejoin_on_empty_protocol()
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        logger=BROKER_LOGGER,
        log_level=logging.DEBUG,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=30.0,
        apply_types=False,
        **options,
    )


class EventPublisher:
    """Publishes envelopes to their topics with the conversation key and CloudEvents headers."""

    def __init__(self, broker: KafkaBroker, namespace: str = "", service: str = "") -> None:
        self._broker = broker
        self._namespace = namespace
        self._service = service  # labels its metrics

    @property
    def namespace(self) -> str:
        return self._namespace

    def topic_name(self, topic: Topic) -> str:
        return topic.name(self._namespace)

    async def publish(self, event: Envelope, topic: Topic) -> None:
        """Returns once Kafka acknowledged it; sent again under a new producer id when the broker lost this
        producer's sequence (parley_common.idempotence)."""
        await self.publish_together((event,), topic)

    async def publish_together(self, events: Sequence[Envelope], topic: Topic) -> None:
        """`publish` for events that belong together: all are handed to the producer, in order, before any
        acknowledgement is awaited, so those of one key leave in one produce request and are appended to their
        partition as one batch — a consumer never reads the first without the rest (a new conversation's
        `opened` and `offered`: one fetch and one projection write per reader instead of two). Returns once Kafka
        acknowledged every one; all are sent again under a new producer id when the broker lost its sequence."""
        encoded = [(event, event.model_dump_json().encode()) for event in events]

        async def send_all() -> None:
            acks = [await self.enqueue(event, topic, body) for event, body in encoded]
            failures = [outcome for outcome in await asyncio.gather(*acks, return_exceptions=True)
                        if isinstance(outcome, BaseException)]
            if failures:
                raise failures[0]

        await sent_again_if_sequence_lost(self._broker, send_all)
        for event in events:
            metrics.PUBLISHED.labels(self._service, topic.base_name, type(event).__name__).inc()

    async def enqueue(self, event: Envelope, topic: Topic, encoded: bytes) -> asyncio.Future[Any]:
        """Hands `encoded` (the event's JSON) to the producer without waiting: the returned future resolves when
        Kafka acknowledged it."""
        round_trips.count(round_trips.KAFKA_PRODUCED)
        headers = headers_for(event)
        topic_name = topic.name(self._namespace)
        with tracing.sending(topic_name, headers):  # the span ends at the hand-off, before Kafka's ack
            future = await self._broker.publish(
                encoded,
                topic=topic_name,
                key=event.partition_key(),
                headers=headers,
                correlation_id=event.correlation_id,  # else faststream draws a uuid4 per record (os.urandom)
                no_confirm=True,
            )
        return future


async def ensure_topics(bootstrap_servers: str, namespace: str = "", topics: Iterable[Topic] = ALL_TOPICS,
                        replication_factor: int = 1, **client_options: Any) -> None:
    """Create missing topics with their partition counts and configs (local runs and tests; production
    declares them as Strimzi KafkaTopic resources). `client_options`: connections.kafka_client_options."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                topic.name(namespace),
                num_partitions=topic.partitions,
                replication_factor=replication_factor,
                topic_configs=_topic_configs(topic),
            )
            for topic in topics
            if topic.name(namespace) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created them first
                await admin.create_topics(wanted)
    finally:
        await admin.close()


async def drop_namespace_topics(bootstrap_servers: str, namespace: str, **client_options: Any) -> None:
    """Delete every topic of a namespace (tests, benchmarks): the local broker rewrites all it holds into one
    snapshot file about twice a second, so leftovers make it slower for everyone (a 373 MB snapshot after a day
    of benchmarks cost ~15 ms of broker CPU per routed message; a fresh one 0.6 ms)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options)
    await admin.start()
    try:
        mine = [name for name in await admin.list_topics() if name.startswith(f"{namespace}.")]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def _topic_configs(topic: Topic) -> dict[str, str]:
    return {
        "cleanup.policy": "compact" if topic.compacted else "delete",
        "retention.ms": str(topic.retention_ms),
        "max.message.bytes": str(topic.max_message_bytes),
    }


