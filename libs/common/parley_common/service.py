"""One way to assemble a service: FastAPI for HTTP, a FastStream Kafka broker started in the lifespan,
health and readiness, AsyncAPI and OpenAPI documents, error handlers, correlation ids, metrics."""

from __future__ import annotations

import asyncio
import gc
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, clear_contextvars

from parley_common import cloudevents, tracing
from parley_common.bounds import BodySizeLimit
from parley_common.connections import kafka_client_options
from parley_common.consumer_groups import documentation_brokers, pace_idle_lanes
from parley_common.dead_peers import ReplicaLeases, evicting_dead_peers
from parley_common.errors import install_error_handlers
from parley_common.group_offsets import adopt_former_offsets
from parley_common.health import Check, health_router
from parley_common.ids import new_id
from parley_common.metrics import HttpMetrics, lag_sampling
from parley_common.openapi import install as install_truthful_openapi
from parley_common.rejoin import leave_for_dead_predecessor, replica_client_id
from parley_common.settings import InfraSettings
from parley_common.topics import Topic

CORRELATION_HEADER = "X-Correlation-Id"
# A caller's correlation id is kept when it is 1-128 printable ASCII characters (what events carry); any other
# is replaced by a new id rather than refused: it only labels logs.
_CORRELATION_ID = re.compile(r"[\x21-\x7e]{1,128}")
FREEZE_HEAP = "freeze_heap_after_start"  # app.state flag: `serve` sets it
Hook = Callable[[], Awaitable[None]]
# A step of a shutdown (the broker's stop, a hook) taking longer than this is logged with its name: a stop that
# outlives its orchestrator's grace period is killed, and the log is then all that tells which step held it.
SLOW_STOP_STEP_SECONDS = 5.0
# The broker's stop: its graceful timeout for the handlers in flight (parley_common.kafka), then the consumers'
# closing (commits, leaving their groups). A consumer whose closing never ended held a stop (no record in flight)
# until the test harness gave up; past this bound the stop is left: what was handled is committed, what was not is
# delivered again (consumers are idempotent), and a member that did not leave expires with its session. Within the
# deployments' grace period after uvicorn's own 30 s (deploy/k8s: 75 s).
BROKER_STOP_SECONDS = 40.0
log = structlog.get_logger(__name__)


def build_service(
    *,
    service: str,
    title: str,
    infra: InfraSettings,
    routers: Sequence[APIRouter],
    readiness: Mapping[str, Check],
    broker: KafkaBroker | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    description: str = "",
    own_body_limits: tuple[str, ...] = (),
    replica_leases: ReplicaLeases | None = None,
) -> FastAPI:
    """`on_startup` hooks run before the broker starts consuming; `on_shutdown` hooks after it stopped. Request
    bodies are limited to `infra.max_request_body_bytes`, except on `own_body_limits` (see BodySizeLimit).
    `replica_leases`: where this replica proves it is alive, so its peers can take over when it is not
    (parley_common.dead_peers)."""

    @asynccontextmanager
    async def lifespan(started: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup:
            await hook()
        try:
            async with _consuming(broker, service, infra, replica_leases):
                if getattr(started.state, FREEZE_HEAP, False):
                    freeze_heap()
                log.info("service_started", service=service)
                yield
        finally:
            for hook in on_shutdown:
                async with _timed_stop_step(getattr(hook, "__qualname__", repr(hook))):
                    await hook()
            log.info("service_stopped", service=service)

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan,
                  telemetry=tracing.http_telemetry())
    app.state.jwt_secret = infra.jwt_secret.get_secret_value()
    app.state.jwt_previous_secrets = tuple(key.get_secret_value() for key in infra.jwt_previous_secrets)
    app.state.service = service
    install_error_handlers(app)
    install_truthful_openapi(app)
    app.include_router(health_router(readiness, service))
    for router in routers:
        app.include_router(router)
    if broker is not None:
        _mount_asyncapi(app, broker, title)

    app.add_middleware(BodySizeLimit, max_bytes=infra.max_request_body_bytes,
                       own_limits=own_body_limits)
    app.add_middleware(HttpMetrics, service=service)
    app.add_middleware(CorrelationMiddleware, service=service)
    return app


@asynccontextmanager
async def _consuming(broker: KafkaBroker | None, service: str, infra: InfraSettings,
                     replica_leases: ReplicaLeases | None) -> AsyncIterator[None]:
    if broker is None:
        yield
        return
    client_id = replica_client_id(service, infra.instance_id)
    async with evicting_dead_peers(broker, infra.kafka_bootstrap, replica_leases, kafka_client_options(infra)):
        await leave_for_dead_predecessor(broker, infra.kafka_bootstrap, client_id, **kafka_client_options(infra))
        await adopt_former_offsets(broker, infra.kafka_bootstrap, **kafka_client_options(infra))
        await broker.start()
        pace_idle_lanes(broker)
        try:
            async with lag_sampling(service, broker, infra.namespace):
                yield
        finally:
            in_flight = _records_in_flight(broker)
            async with _timed_stop_step("broker", in_flight=in_flight):
                try:
                    async with asyncio.timeout(BROKER_STOP_SECONDS):
                        await broker.stop()  # waits for in-flight handlers, then commits their offsets
                except TimeoutError:
                    log.warning("broker_stop_abandoned", seconds=BROKER_STOP_SECONDS, in_flight=in_flight)


@asynccontextmanager
async def _timed_stop_step(step: str, **context: Any) -> AsyncIterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        seconds = time.monotonic() - started
        if seconds >= SLOW_STOP_STEP_SECONDS:
            log.warning("service_stop_step_slow", step=step, seconds=round(seconds, 3), **context)


def _records_in_flight(broker: KafkaBroker) -> list[str]:
    """`group=count` of each subscriber handling records now: the broker's stop waits for them (its graceful
    timeout), so a slow stop with none in flight was held by the consumers' own closing (commit, leave group)."""
    counts = ((getattr(subscriber, "group_id", None), getattr(subscriber.lock, "qsize", 0))
              for subscriber in broker.subscribers)
    return [f"{group}={count}" for group, count in counts if count]


class CorrelationMiddleware:
    """Binds X-Correlation-Id (or a new id) for logs and `request.state.correlation_id`, and echoes it on the
    response. Pure ASGI: a BaseHTTPMiddleware here halved the request rate of a small endpoint (bench/ingest_*)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clear_contextvars()
        given = Headers(scope=scope).get(CORRELATION_HEADER, "")
        correlation_id = given if _CORRELATION_ID.fullmatch(given) else new_id()
        bind_contextvars(service=self.service, correlation_id=correlation_id)
        scope.setdefault("state", {})["correlation_id"] = correlation_id

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[CORRELATION_HEADER] = correlation_id
            await send(message)

        await self.app(scope, receive, send_with_header)


def asyncapi_document(broker: KafkaBroker, title: str) -> dict[str, Any]:
    """FastStream's document (each consumer group's topics described one by one: `documentation_brokers`), told
    what the records really carry: the CloudEvents headers and the W3C trace context, and the correlation id in
    `ce_correlationid` (FastStream assumes its own `correlation_id` header, which Parley never sends)."""
    spec = AsyncAPI(broker, *documentation_brokers(broker), title=title, version="1.0.0",
                    schema_version="3.0.0").to_specification()
    document = cast(dict[str, Any], spec.to_jsonable())
    for message in document.get("components", {}).get("messages", {}).values():
        message["headers"] = _record_headers_schema()
        message["correlationId"] = {"location": f"$message.header#/{cloudevents.CORRELATION_HEADER}",
                                    "description": cloudevents.HEADERS[cloudevents.CORRELATION_HEADER]}
    return document


def declare_published(broker: KafkaBroker, namespace: str, *topics: Topic) -> None:
    """Names `topics` in the service's AsyncAPI document as topics it publishes to, with their event schema:
    FastStream lists only topics it has a publisher object for, and the services publish through EventPublisher,
    not through those objects."""
    for topic in topics:
        name = topic.name(namespace)
        broker.publisher(name, title=name, description=topic.description, schema=topic.payload)


def _record_headers_schema() -> dict[str, Any]:
    schema = cloudevents.headers_schema()
    schema["description"] += " W3C Trace Context (optional) when the producer traces."
    schema["properties"] |= {name: {"type": "string", "description": text} for name, text in tracing.HEADERS.items()}
    return schema


def _mount_asyncapi(app: FastAPI, broker: KafkaBroker, title: str) -> None:
    @app.get("/asyncapi.json", tags=["docs"], summary="AsyncAPI document of the topics this service uses")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(broker, title)


def freeze_heap() -> None:
    """Move what startup built (modules, schemas, clients) out of the collector's sight: a full collection of
    the router's heap paused the event loop ~60 ms (the p99 of a steady load); frozen, it skips those objects.
    Only in a service's own process (`serve`): tests start many apps in one process, and what a freeze holds
    is never collected."""
    gc.collect()
    gc.freeze()


# How long an idle keep-alive connection stays open: longer than the idle expiry of any client in front of a service
# (httpx's 5 s — the console's and the tests' clients —, a cloud load balancer's 60 s), so the client always closes
# an idle connection first. With uvicorn's default, 5 s like httpx's, a request sent on a connection at the moment
# the service closed it failed with a read error.
KEEP_ALIVE_SECONDS = 75


def serve(app: FastAPI, host: str, port: int) -> None:
    setattr(app.state, FREEZE_HEAP, True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=30,
                timeout_keep_alive=KEEP_ALIVE_SECONDS)
