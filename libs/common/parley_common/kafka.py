"""Kafka: the broker factory, the event publisher, topic creation, and the consume-or-dead-letter step."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, Union, cast

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from pydantic import ValidationError

from parley_common import metrics, retries, round_trips, tracing
from parley_common.channels import ChannelNotOfTenant, Channels
from parley_common.cloudevents import correlation_id_from, headers_for
from parley_common.events.dlq import DeadLetter, original_record_fields
from parley_common.events.envelope import Envelope
from parley_common.idempotence import sent_again_if_sequence_lost
from parley_common.logging import BROKER_LOGGER, bind_correlation_id
from parley_common.rejoin import rejoin_on_empty_assignment
from parley_common.topics import ALL_TOPICS, DEAD_LETTERS, Topic

log = structlog.get_logger(__name__)
E = TypeVar("E")


IDLE_FETCH_BACKOFF_MS = 40
FIRST_IDLE_PAUSE_MS = 5
_idle_fetch_backoff = {"longest": 0.0}


def idle_pause(previous: float, longest: float) -> float:
    """The pause after an empty fetch, given the one before it (0 after a fetch that brought records): it doubles
    from FIRST_IDLE_PAUSE_MS up to `longest` (seconds), so a consumer that just emptied its partitions looks
    again soon, and one that stays idle fetches 1/`longest` times a second."""
    return min(longest, max(FIRST_IDLE_PAUSE_MS / 1000, previous * 2))


def pace_idle_fetches(longest_ms: int) -> None:
    """After a fetch that brought no records, pause before the next fetch to that broker: from 5 ms, doubling
    while the consumer stays idle, up to `longest_ms` — the most a record arriving at an idle consumer waits.

    Kafka holds an empty fetch for `fetch_max_wait_ms` (a long poll); the local broker (noida-db) answers it at
    once, so an idle aiokafka consumer re-fetched ~2,400 times a second and burned half a core — the router's six
    consumers a whole core while idle (measured; docs/benchmarks.md). Against Kafka the pause follows a long poll
    that already waited, so it costs nothing. Against the local broker a fixed 10 ms pause left an idle consumer
    at 3.6 % of a core (45 fetches/s on a loaded machine); 40 ms at its longest, 1.5 % (20 fetches/s), and a
    record still read within 50 ms of arriving. aiokafka 0.14's fetcher is pinned; tests/common/integration
    checks the effect, so an upgrade that moves this seam fails loudly."""
    _idle_fetch_backoff["longest"] = longest_ms / 1000
    original = getattr(Fetcher._proc_fetch_request, "__wrapped__", Fetcher._proc_fetch_request)

    @functools.wraps(original)
    async def fetch_then_pace(self: Fetcher, *args: Any) -> bool:
        has_new_data: bool = await original(self, *args)
        longest = _idle_fetch_backoff["longest"]
        if has_new_data or not longest:
            self._parley_idle_pause = 0.0
            return has_new_data
        pause = self._parley_idle_pause = idle_pause(getattr(self, "_parley_idle_pause", 0.0), longest)
        try:
            await asyncio.sleep(pause)
        except asyncio.CancelledError:  # the fetcher closing: it awaits this task and expects no error
            return False
        return has_new_data

    Fetcher._proc_fetch_request = fetch_then_pace


async def _take_batch_without_idle_sleep(self: BatchSubscriber, consumer: Any) -> tuple[Any, ...]:
    """FastStream 0.7.8's batch subscriber sleeps `batch_timeout_ms` after a `getmany` that waited that long and
    found nothing, so a record arriving during the sleep waited for it (up to 50 ms with our settings: a median
    of 59 ms against ~5 ms in tests/common/integration/test_batch_latency.py, at 100 ms). `getmany` already
    waits, and returns the moment a record arrives, so the sleep only adds latency. FastStream is pinned;
    tests/common/integration/test_batch_latency.py fails if an upgrade moves this seam."""
    records = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    return tuple(record for batch in records.values() for record in batch)


def take_batches_without_idle_sleep() -> None:
    BatchSubscriber.get_msg = _take_batch_without_idle_sleep  # type: ignore[method-assign]


def make_broker(bootstrap_servers: str, client_id: str, *, idle_fetch_backoff_ms: int = IDLE_FETCH_BACKOFF_MS,
                **options: Any) -> KafkaBroker:
    """A FastStream Kafka broker whose producer waits for all in-sync replicas and never duplicates on retry.
    FastStream's per-record "Received"/"Processed" lines are logged at DEBUG: at INFO they cost ~3 % of a busy
    consumer's CPU and drown the service's own logs (failures are logged by `consume`).

    Without FastDepends (`apply_types=False`): our handlers take the message itself (`_register` gives them a
    decoder that hands it over) and parse it with the topic's model. Resolving the message through FastDepends
    ran a worker thread per delivery: ~0.45 ms of CPU per record, about half of consuming it (measured with a
    trivial handler, 3,000 records: 908-1,036 → 459-533 µs per record)."""
    pace_idle_fetches(idle_fetch_backoff_ms)
    take_batches_without_idle_sleep()
    rejoin_on_empty_assignment()
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
        round_trips.count(round_trips.KAFKA_PRODUCED)
        headers = headers_for(event)
        topic_name = topic.name(self._namespace)
        encoded = event.model_dump_json().encode()
        with tracing.sending(topic_name, headers):
            await sent_again_if_sequence_lost(self._broker, lambda: self._broker.publish(
                encoded, topic=topic_name, key=event.partition_key(), headers=headers))
        metrics.PUBLISHED.labels(self._service, topic.base_name, type(event).__name__).inc()


class PermanentFailure(Exception):
    """The message can never be processed (bad reference, rule violation): dead-letter it and move on.

    Any other exception is treated as transient: the offset is not committed and the message comes again."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def channels_named(event: Any) -> list[str]:
    """Every channel an event names: its own (`channel_id`) and its identities' (contacts' events)."""
    named = [event.channel_id] if isinstance(getattr(event, "channel_id", None), str) else []
    identities = list(getattr(event, "identities", ()) or ())
    if getattr(event, "identity", None) is not None:
        identities.append(event.identity)
    return named + [identity.channel_id for identity in identities]


def check_channels(channels: Channels | None, event: Any) -> None:
    """PermanentFailure when the event names a channel that is unknown or belongs to another tenant. None: a
    subscriber without the channel file (a bot, examples/faq_bot) trusts the producers' check."""
    tenant_id = getattr(event, "tenant_id", None)
    if tenant_id is None or channels is None:
        return
    for channel_id in channels_named(event):
        try:
            channels.of_tenant(tenant_id, channel_id)
        except ChannelNotOfTenant as mismatch:
            raise PermanentFailure(mismatch.reason, str(mismatch)) from None


async def consume(
    message: KafkaMessage,
    topic: Topic,
    handle: Callable[[Any], Awaitable[None]],
    publisher: EventPublisher,
    service: str,
    channels: Channels | None,
    *,
    batched: bool = False,
) -> None:
    """Parse one record of `topic`, check the channels it names belong to its tenant, and hand it to `handle`;
    unparseable records, a channel of another tenant (or none at all) and PermanentFailure go to the dead-letter
    topic (with the original bytes and the reason) so the partition never stalls on a poison message and a
    mismatched record changes nothing. Any other error is tried again as parley_common.retries decides: without
    limit during an outage of the database, cache or broker, else ATTEMPTS times before it is dead-lettered."""
    raw_headers = _headers_of(message)
    bind_correlation_id(correlation_id_from(raw_headers))
    # A record of a batch handled as a whole is traced by the batch's span (`subscribe_whole_batches`).
    traced = contextlib.nullcontext() if batched else tracing.processing(topic.name(publisher.namespace),
                                                                         raw_headers, message.raw_message)
    with traced:
        await _parse_and_handle(message, topic, handle, publisher, service, channels, batched, raw_headers)


async def _parse_and_handle(message: KafkaMessage, topic: Topic, handle: Callable[[Any], Awaitable[None]],
                            publisher: EventPublisher, service: str, channels: Channels | None, batched: bool,
                            raw_headers: dict[str, str]) -> None:
    try:
        event = topic.parse(message.body)
    except ValidationError as exc:
        tracing.dead_lettered("invalid_event")
        await dead_letter(publisher, message, topic, service, "invalid_event", _summary(exc), raw_headers)
        metrics.count_record(service, topic.base_name, "dead_lettered")
        return
    await _handle_parsed(message, event, topic, handle, publisher, service, channels, raw_headers, batched=batched)


async def _handle_parsed(message: KafkaMessage, event: Any, topic: Topic, handle: Callable[[Any], Awaitable[None]],
                         publisher: EventPublisher, service: str, channels: Channels | None,
                         raw_headers: dict[str, str], *, batched: bool = False) -> None:
    record = _record_of(message, handle)
    with metrics.handling(service, topic.base_name, batched=batched) as handled:
        try:
            check_channels(channels, event)
            await handle(event)
        except PermanentFailure as failure:
            handled.dead_lettered()
            tracing.dead_lettered(failure.reason)
            await dead_letter(publisher, message, topic, service, failure.reason, failure.detail, raw_headers,
                              tenant_id=getattr(event, "tenant_id", None))
        except Exception as error:
            if not await _gives_up_after(record, error, service, topic):
                raise  # not committed: the record comes again
            handled.dead_lettered()
            tracing.dead_lettered(retries.GIVEN_UP)
            await dead_letter(publisher, message, topic, service, retries.GIVEN_UP, retries.describe(error),
                              raw_headers, tenant_id=getattr(event, "tenant_id", None))
        _failures.forget(record)


_failures = retries.FailureCounts()  # of the records this process is trying again


def _headers_of(message: KafkaMessage) -> dict[str, str]:
    return {key: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            for key, value in message.headers.items()}


def _record_of(message: KafkaMessage, handle: Callable[..., Any]) -> tuple[Any, ...]:
    """Which record, for which handler: the key its failures are counted under."""
    raw = message.raw_message
    return (getattr(raw, "topic", None), getattr(raw, "partition", None), getattr(raw, "offset", None),
            getattr(handle, "__qualname__", repr(handle)))


async def _gives_up_after(record: tuple[Any, ...], error: Exception, service: str, topic: Topic) -> bool:
    """Count the failure; True when the record is to be dead-lettered now, else False after the back-off (the
    caller lets the error through, so the record is not committed and comes again)."""
    failures = _failures.failed(record)
    outage = retries.is_outage(error)
    if retries.gives_up(failures, outage):
        _failures.forget(record)
        log.error("handler_gave_up", service=service, topic=topic.base_name, error=type(error).__name__,
                  attempts=failures)
        return True
    pause = retries.pause_after(failures)
    log.warning("handler_failed", service=service, topic=topic.base_name, error=type(error).__name__,
                failures=failures, outage=outage, retry_in_seconds=pause)
    await asyncio.sleep(pause)
    return False


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{exc.error_count()} error(s); first at {location or '<root>'}: {first['msg']}"


def _identifier(header: str | None) -> str | None:
    """A header naming the tenant or correlation id, when the envelope can carry it (1-128 characters): a record
    that failed may carry anything, and a letter that does not validate would stall the partition."""
    return header if header and len(header) <= 128 else None


async def dead_letter(
    publisher: EventPublisher,
    message: KafkaMessage,
    topic: Topic,
    service: str,
    reason: str,
    detail: str | None,
    headers: dict[str, str],
    tenant_id: str | None = None,
) -> None:
    raw = message.raw_message
    record_key = getattr(raw, "key", None)
    letter = DeadLetter(
        occurred_at=datetime.now(UTC),
        tenant_id=tenant_id or _identifier(headers.get("ce_tenantid")) or "unknown",
        correlation_id=_identifier(headers.get("ce_correlationid")) or str(message.message_id),
        service=service,
        source_topic=topic.name(publisher.namespace),
        partition=getattr(raw, "partition", None),
        offset=getattr(raw, "offset", None),
        reason=reason,
        detail=detail,
        **original_record_fields(message.body, record_key, headers),
    )
    log.warning("dead_lettered", reason=reason, source_topic=letter.source_topic, offset=letter.offset)
    await publisher.publish(letter, DEAD_LETTERS)
    metrics.DEAD_LETTERS.labels(service, topic.base_name, reason).inc()


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


def subscribe(
    broker: KafkaBroker,
    topic: Topic,
    *,
    group_id: str,
    namespace: str,
    handle: Callable[[Any], Awaitable[None]],
    publisher: EventPublisher,
    service: str,
    channels: Channels | None,
    **options: Any,
) -> None:
    """Register a consumer of `topic` in `group_id`: offsets are committed only after `handle` returned
    (or the record was dead-lettered); an exception leaves it uncommitted and it is delivered again."""

    async def on_record(message: KafkaMessage) -> None:
        await consume(message, topic, handle, publisher, service, channels)

    on_record.__name__ = f"{service}_{topic.base_name.replace('.', '_')}"
    _register(broker, topic, group_id, namespace, on_record, **options)


def _register(broker: KafkaBroker, topic: Topic, group_id: str, namespace: str,
              handler: Callable[..., Awaitable[None]], consumers: int = 1, **options: Any) -> None:
    """Subscribe `handler` from the earliest offset, committing only after it returned (NACK redelivers);
    `consumers` members of the group in this process share out the topic's partitions.

    Consumer groups are cluster-wide like topics, so the namespace prefixes them too: deployments (and test runs)
    sharing a cluster must never join each other's groups and keep rebalancing them."""
    group = f"{namespace}.{group_id}" if namespace else group_id
    # Handlers get the message itself (no FastDepends, see `make_broker`); the annotation only tells the AsyncAPI
    # document what the channel carries: the topic's event model.
    payload: Any = topic.payload
    handler.__annotations__ = {"message": list[payload] if options.get("batch") else payload, "return": None}
    shared = f" {consumers} consumers of this group in each process share out the partitions." if consumers > 1 else ""
    for number in range(1, consumers + 1):
        broker.subscriber(
            topic.name(namespace),
            group_id=group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            title=f"{topic.name(namespace)}:{group}",
            description=topic.description + shared,
            include_in_schema=number == 1,  # one operation per group in the AsyncAPI document, not per consumer
            decoder=_message_itself,
            **options,
        )(handler)


def follow_from_now(broker: KafkaBroker, topics: tuple[Topic, ...], namespace: str,
                    handle: Callable[[KafkaMessage], Awaitable[None]], title: str, description: str) -> None:
    """One consumer outside any group reading `topics`, from the newest record on, never committing: every replica
    sees every new record (fan-out to live screens). `handle` gets the message itself (its record names the
    topic: `message.raw_message.topic`)."""
    payload = topics[0].payload if len(topics) == 1 else Union[tuple(topic.payload for topic in topics)]  # noqa: UP007
    handle.__annotations__ = {"message": payload, "return": None}  # for the AsyncAPI document only
    broker.subscriber(*(topic.name(namespace) for topic in topics), auto_offset_reset="latest", title=title,
                      description=description, decoder=_message_itself)(handle)


async def _message_itself(message: KafkaMessage) -> KafkaMessage:
    """The decoder of every subscription: the handler gets the message (body, headers, record), not a decoded
    body, and parses the body with the topic's model (see `make_broker`)."""
    return message


@dataclass(frozen=True)
class _RecordView:
    """One record of a batch, shaped like the single-record message that `consume` reads."""

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


def subscribe_batch(
    broker: KafkaBroker,
    topic: Topic,
    *,
    group_id: str,
    namespace: str,
    handle: Callable[[Any], Awaitable[None]],
    publisher: EventPublisher,
    service: str,
    channels: Channels,
    max_records: int = 64,
    concurrency: int = 64,
    batch_timeout_ms: int = 50,
    consumers: int = 1,
) -> None:
    """Like `subscribe`, for handlers that wait mostly on the network (provider calls, downloads): records of a
    batch are grouped by key, so different conversations are handled concurrently while one conversation's
    records stay in order. The batch is committed only after every record was handled or dead-lettered; any
    other error redelivers the whole batch, which idempotent handlers absorb. A consumer takes its next batch
    only when the last one is done: several `consumers` (each with its share of the partitions) keep a slow
    record from holding up the records of other partitions. `concurrency` is shared by all of them."""
    # Bounded: each key in flight holds connections from finite database and cache pools.
    slots = asyncio.Semaphore(concurrency)

    async def in_order(records: list[Any]) -> None:
        async with slots:
            for record in records:
                await consume(_view_of(record), topic, handle, publisher, service, channels)

    async def on_batch(message: KafkaMessage) -> None:
        records = _records_of(message)
        by_key: dict[bytes, list[Any]] = {}
        for record in records:
            by_key.setdefault(record.key or b"", []).append(record)
        results = await asyncio.gather(*(in_order(group) for group in by_key.values()), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    on_batch.__name__ = f"{service}_{topic.base_name.replace('.', '_')}_batch"
    _register(broker, topic, group_id, namespace, on_batch, consumers=consumers, batch=True, max_records=max_records,
              batch_timeout_ms=batch_timeout_ms)


def subscribe_whole_batches(
    broker: KafkaBroker,
    topic: Topic,
    *,
    group_id: str,
    namespace: str,
    handle: Callable[[list[Any]], Awaitable[None]],
    publisher: EventPublisher,
    service: str,
    channels: Channels,
    max_records: int = 64,
    batch_timeout_ms: int = 50,
    consumers: int = 1,
) -> None:
    """For handlers that write a batch in bulk: `handle` gets the batch's parsed events in one call (records that
    do not parse are dead-lettered with their bytes, as `consume` does, and the rest goes on). The batch is
    committed only after `handle` returned. During an outage (parley_common.retries) the whole batch comes again
    after a back-off; after any other error each event is handled on its own (`handle([event])`, tried again and
    dead-lettered as `consume` does), so one bad record does not hold up the rest. An idempotent handler absorbs
    the repeats. Several `consumers` overlap one batch's slow tail with the next batches' work."""

    async def alone(event: Any) -> None:
        await handle([event])

    alone.__qualname__ = f"{getattr(handle, '__qualname__', 'handle')}[alone]"

    async def on_batch(message: KafkaMessage) -> None:
        records = _records_of(message)
        parsed: list[tuple[KafkaMessage, Any]] = []
        with tracing.processing_batch(topic.name(namespace), records):
            for record in records:
                view = _view_of(record)

                async def collect(event: Any, view: KafkaMessage = view) -> None:
                    parsed.append((view, event))

                await consume(view, topic, collect, publisher, service, channels, batched=True)
            if parsed:
                await handle_or_each_alone(parsed)

    async def handle_or_each_alone(parsed: list[tuple[KafkaMessage, Any]]) -> None:
        try:
            with metrics.handling(service, topic.base_name, records=len(parsed)):
                await handle([event for _, event in parsed])
        except Exception as error:
            if retries.is_outage(error):
                await _gives_up_after(_record_of(parsed[0][0], handle), error, service, topic)  # the back-off
                raise
            # A record of the batch may never succeed: each on its own, so only such a one is dead-lettered
            # (after its attempts) and the others are stored.
            for view, event in parsed:
                await _handle_parsed(view, event, topic, alone, publisher, service, None, _headers_of(view))
        else:
            _failures.forget(_record_of(parsed[0][0], handle))

    on_batch.__name__ = f"{service}_{topic.base_name.replace('.', '_')}_batches"
    _register(broker, topic, group_id, namespace, on_batch, consumers=consumers, batch=True,
              max_records=max_records, batch_timeout_ms=batch_timeout_ms)
