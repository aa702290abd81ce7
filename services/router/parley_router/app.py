"""Wiring of the router service: settings, stores, consumers, the offer/snooze sweeper, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI

from parley_common.auth import Principal
from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.tasks import running
from parley_common.topics import (
    AGENTS_EVENTS,
    CONTACTS_EVENTS,
    CONVERSATIONS_COMMANDS,
    CONVERSATIONS_EVENTS,
    DEAD_LETTERS,
    INBOUND_MESSAGES,
    MEDIA_EVENTS,
    OUTBOUND_MESSAGES,
    Topic,
)
from parley_router.adapters.broadcast_deliveries import BroadcastDeliveries
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.adapters.conversations import ConversationRepository
from parley_router.adapters.directory import Directory
from parley_router.adapters.presence import PresenceStore
from parley_router.adapters.timeline import ProcessedEvents, TimelineRepository
from parley_router.handlers import (
    http_actions,
    http_conversations,
    http_directory,
    http_export,
    http_history,
    http_supervisor,
    live,
)
from parley_router.handlers.contacts_in import ContactsHandler
from parley_router.handlers.engine import Engine, Stores
from parley_router.handlers.events_in import CommandsHandler, MediaHandler, OutboundHandler
from parley_router.handlers.inbound import InboundHandler
from parley_router.handlers.upkeep import Upkeep, build_upkeep
from parley_router.settings import RouterSettings

SERVICE = "router"
log = structlog.get_logger(__name__)


def build_engine(runtime: Runtime, settings: RouterSettings, clock: Clock) -> Engine:
    db = runtime.db
    stores = Stores(ConversationRepository(db), TimelineRepository(db), Directory(db),
                    PresenceStore(runtime.redis, settings.infra.redis_prefix(), settings.presence_ttl_seconds),
                    ProcessedEvents(db), BroadcastDeliveries(db),
                    CapacityAudit(runtime.redis, settings.infra.redis_prefix(), db))
    return Engine(stores, runtime.publisher, clock, cache_ttl_seconds=settings.directory_cache_ttl_seconds)


def wire_consumers(runtime: Runtime, engine: Engine, settings: RouterSettings, channels: Channels) -> None:
    """Two consumer groups: the inbound messages (the hot path: a customer waits to be offered), and the router's
    other topics apart — a burst of contacts' events (then one database round trip each, now a few per batch)
    held the inbound messages of the same batches back (offered p50 0.7 → 2.4 s at 50 msg/s, docs/benchmarks.md).
    Each consumer costs a fetch loop while records flow and its group's heartbeats, so no more than that."""

    def reads(topic: Topic, handle: Callable[[Any], Awaitable[None]], **how: Any) -> Reads:
        # until issue 17 each topic had a group of its own: its offsets are adopted once (group_offsets)
        return Reads(topic, handle, formerly=(f"{settings.consumer_group}.{topic.base_name}",), **how)

    # different conversations concurrently (one in order), and the new ones offered together (handlers/coalescing.py)
    inbound = ConsumerGroup(f"{settings.consumer_group}.inbound", (
        reads(INBOUND_MESSAGES, InboundHandler(engine, channels).handle, by_key=True,
              concurrency=settings.inbound_concurrency),),
        members=settings.consumers, max_records=settings.inbound_batch_max,
        why="The inbound messages: a group of their own, so a customer is never offered behind other topics' work.")
    group = ConsumerGroup(
        f"{settings.consumer_group}.events",
        (
            reads(OUTBOUND_MESSAGES, OutboundHandler(engine).handle),
            reads(MEDIA_EVENTS, MediaHandler(engine)),
            reads(CONTACTS_EVENTS, ContactsHandler(engine), whole_batch=True),  # a batch in a few round trips
            reads(CONVERSATIONS_COMMANDS, CommandsHandler(engine).handle),
        ),
        max_records=settings.inbound_batch_max)
    for lane in (inbound, group):
        consume_group(runtime.broker, lane, namespace=settings.infra.namespace, publisher=runtime.publisher,
                      service=SERVICE, channels=channels)


async def export_floors_forever(engine: Engine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            for tenant_id in await engine.stores.presence.tenants_with_online_agents():
                await http_supervisor.floor(engine, tenant_id)
        except Exception:  # a passing database error: the gauges keep their last values
            log.exception("supervisor_metrics_failed")


async def sweep_forever(engine: Engine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await engine.sweep()
        except Exception:  # the sweeper must survive a passing database error
            log.exception("sweep_failed")


def create_app(settings: RouterSettings, clock: Clock | None = None, *, consume: bool = True,
               channels: Channels | None = None) -> FastAPI:
    """`consume=False` serves HTTP and publishes without joining the consumer group (tests, API-only pods)."""
    channels = channels if channels is not None else load_channels_or_exit(settings.infra.channels_file,
                                                                           "parley-router")
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=True)
    declare_published(runtime.broker, settings.infra.namespace, CONVERSATIONS_EVENTS, AGENTS_EVENTS, DEAD_LETTERS)
    engine = build_engine(runtime, settings, clock or SystemClock())
    async def live_counts(principal: Principal, teams: frozenset[str]) -> dict[str, int]:
        return await http_conversations.tab_counts(engine, principal, teams)

    hub = live.LiveHub(engine.stores.timeline, live_counts)
    if consume:
        wire_consumers(runtime, engine, settings, channels)
        live.follow_changes(runtime.broker, hub, settings.infra.namespace)
    background = contextlib.AsyncExitStack()
    upkeep: Upkeep = build_upkeep(runtime, engine, settings)

    async def start() -> None:
        await engine.stores.ensure_indexes()
        await background.enter_async_context(running(
            sweep_forever(engine, settings.sweep_interval_seconds), upkeep.run_forever(settings),
            export_floors_forever(engine, settings.supervisor_metrics_interval_seconds), hub.pause_while_unwatched()))

    async def stop() -> None:
        await background.aclose()
        await runtime.close()

    app = build_service(
        service=SERVICE,
        title="Parley router",
        description="conversations, assignment, queues, agents, bots",
        infra=settings.infra,
        routers=[live.router, http_history.router, http_export.router, http_conversations.router,
                 http_actions.router, http_directory.router, http_supervisor.router],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        replica_leases=runtime.replica_leases,
        on_startup=[start],
        on_shutdown=[stop],
    )
    app.state.engine = engine
    app.state.live_hub = hub
    app.state.upkeep = upkeep
    app.state.brands = dict(settings.brands)
    return app


def main() -> None:
    run_service("parley-router", RouterSettings, create_app)
