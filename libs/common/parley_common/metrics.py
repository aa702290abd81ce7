"""The Prometheus metrics every service exports at /metrics, and the thin hooks that feed them: HTTP requests,
Kafka records by outcome and handler time per topic, consumer lag, dead letters, published events, and the
latency of every MongoDB and Redis command. Service-specific metrics (ingest's webhooks, outbound's sends and
window refusals, media's states, the router's floor) live in each service's own `metrics` module.

Every series carries `service` (several services share one process in tests; in a cluster Prometheus adds the
pod). Label values are bounded: topics, event types, commands, route templates, reasons — never ids."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from pymongo import monitoring
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley_common.tasks import running

log = structlog.get_logger(__name__)
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SLOW = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LAG_INTERVAL_S = 15.0

HTTP_REQUESTS = Counter("parley_http_requests_total", "HTTP requests by route template and status",
                        ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("parley_http_request_seconds", "HTTP request time until the response started",
                         ["service", "route"], buckets=SLOW)
RECORDS = Counter("parley_consumer_records_total",
                  "Kafka records by outcome: handled, dead_lettered, failed (left uncommitted: comes again)",
                  ["service", "topic", "outcome"])
HANDLER_SECONDS = Histogram("parley_consumer_handler_seconds", "Time to handle one record (or one batch)",
                            ["service", "topic"], buckets=SLOW)
LAG = Gauge("parley_consumer_lag_records", "Records not yet consumed on the partitions this process holds",
            ["service", "topic", "group"])
DEAD_LETTERS = Counter("parley_dead_letters_total", "Records sent to the dead-letter topic, by source and reason",
                       ["service", "topic", "reason"])
PUBLISHED = Counter("parley_events_published_total", "Events published, by topic and event type",
                    ["service", "topic", "event_type"])
MONGO_SECONDS = Histogram("parley_mongodb_command_seconds", "MongoDB command time by command and outcome",
                          ["service", "command", "outcome"], buckets=FAST)
REDIS_SECONDS = Histogram("parley_redis_command_seconds", "Redis command (or pipeline) time by command and outcome",
                          ["service", "command", "outcome"], buckets=FAST)


class HttpMetrics:
    """Pure ASGI (like CorrelationMiddleware): counts each request under its route template once routed, or
    `unmatched`, so ids in paths never become label values."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                HTTP_SECONDS.labels(self.service, _route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            HTTP_REQUESTS.labels(self.service, scope["method"], _route(scope), str(status["code"])).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


class Handling:
    """The outcome of one record being handled; `handled` unless told otherwise or the handler raised."""

    def __init__(self) -> None:
        self.outcome = "handled"

    def dead_lettered(self) -> None:
        self.outcome = "dead_lettered"


@contextlib.contextmanager
def handling(service: str, topic: str, records: int = 1, batched: bool = False) -> Iterator[Handling]:
    """Counts `records` under the block's outcome and observes its time; for a record of a whole batch
    (`batched`) only a dead letter or a failure: the batch's own block counts and times the records it handles."""
    result = Handling()
    started = time.perf_counter()
    try:
        yield result
    except BaseException:
        result.outcome = "failed"
        raise
    finally:
        if not batched:
            HANDLER_SECONDS.labels(service, topic).observe(time.perf_counter() - started)
        if not batched or result.outcome != "handled":
            RECORDS.labels(service, topic, result.outcome).inc(records)


def count_record(service: str, topic: str, outcome: str) -> None:
    RECORDS.labels(service, topic, outcome).inc()


class MongoCommandTimer(monitoring.CommandListener):
    """PyMongo's command monitoring: the driver's own timing of every command (including getMore, and the
    handshakes and pings of its monitors, which are left out)."""

    _IGNORED = frozenset({"hello", "ismaster", "isMaster", "ping", "saslStart", "saslContinue", "endSessions"})

    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Nothing to do: the succeeded and failed events carry the duration."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event.command_name, "ok", event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event.command_name, "error", event.duration_micros)

    def _observe(self, command: str, outcome: str, micros: int) -> None:
        if command not in self._IGNORED:
            MONGO_SECONDS.labels(self.service, command, outcome).observe(micros / 1e6)


class TimedRedis(Redis):
    """redis-py's asyncio client timing each command, and each pipeline as one `PIPELINE`. The service's name
    is given after construction (`Redis.from_pool` builds the instance)."""

    metrics_service = "unknown"

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        outcome = "error"
        try:
            execute: Any = super().execute_command  # untyped in redis-py
            result = await execute(*args, **options)
            outcome = "ok"
            return result
        finally:
            REDIS_SECONDS.labels(self.metrics_service, str(args[0]).upper(), outcome).observe(
                time.perf_counter() - started)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipeline = _TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipeline.metrics_service = self.metrics_service
        return pipeline


class _TimedPipeline(Pipeline):
    metrics_service = "unknown"

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await super().execute(raise_on_error)
            outcome = "ok"
            return result
        finally:
            REDIS_SECONDS.labels(self.metrics_service, "PIPELINE", outcome).observe(time.perf_counter() - started)


async def sample_lag(service: str, consumers: Iterable[tuple[str, Any]], namespace: str = "") -> None:
    """Sets the lag gauge of each (group, aiokafka consumer): the newest offsets (asked from the broker, so a
    stuck handler shows growing lag) minus the consumer's positions, summed per topic over the partitions this
    process holds. Summed over the pods, it is the group's lag. Topics and groups are labelled without the
    deployment's namespace prefix, like every other series."""
    prefix = f"{namespace}." if namespace else ""
    for group, consumer in consumers:
        partitions = consumer.assignment()
        if not partitions:
            continue
        newest = await consumer.end_offsets(list(partitions))
        per_topic: dict[str, int] = {}
        for partition in partitions:
            position = await consumer.position(partition)
            per_topic[partition.topic] = per_topic.get(partition.topic, 0) + max(0, newest[partition] - position)
        for topic, lag in per_topic.items():
            LAG.labels(service, topic.removeprefix(prefix), group.removeprefix(prefix)).set(lag)


@contextlib.asynccontextmanager
async def lag_sampling(service: str, broker: Any, namespace: str = "",
                       interval_s: float = LAG_INTERVAL_S) -> AsyncIterator[None]:
    """Samples the lag of every grouped subscriber of the started `broker` every `interval_s` until the block
    ends. A failed sample (broker away) is logged and tried again next time."""

    def consumers() -> list[tuple[str, Any]]:
        return [(subscriber.group_id, subscriber.consumer) for subscriber in broker.subscribers
                if getattr(subscriber, "group_id", None) and getattr(subscriber, "consumer", None) is not None]

    async def loop() -> None:
        while True:
            try:
                await sample_lag(service, consumers(), namespace)
            except Exception as exc:  # noqa: BLE001 - a metric must never take the service down
                log.warning("lag_sample_failed", error=type(exc).__name__)
            await asyncio.sleep(interval_s)

    async with running(loop()):
        yield
