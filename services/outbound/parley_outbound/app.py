"""Wiring of the outbound service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from parley_common.admission import Admission
from parley_common.batching import LingerGate
from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.errors import RETRY_AFTER_SECONDS, error_body
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.tasks import running
from parley_common.topics import (
    CHANNEL_UPDATES,
    CONTACTS_EVENTS,
    CONVERSATIONS_COMMANDS,
    DEAD_LETTERS,
    INBOUND_MESSAGES,
    INBOUND_PREFERENCES,
    INBOUND_STATUSES,
    MEDIA_EVENTS,
    OUTBOUND_MESSAGES,
    OUTBOUND_REQUESTS,
)
from parley_common.visibility_store import VisibilityProjection, visibility_reads
from parley_outbound.adapters.audience_repo import AudienceRepository
from parley_outbound.adapters.broadcast_replies import BroadcastReplies
from parley_outbound.adapters.broadcasts_repo import BroadcastRepository
from parley_outbound.adapters.contact_fields import ContactFieldsStore
from parley_outbound.adapters.http_transport import AiohttpTransport
from parley_outbound.adapters.media_store import MediaStore
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.parked_statuses import ParkedStatusRepository
from parley_outbound.adapters.pending_messages import PendingMessages
from parley_outbound.adapters.preferences_repo import MarketingPreferenceRepository
from parley_outbound.adapters.projection_marker import ProjectionsRebuilding
from parley_outbound.adapters.providers.registry import adapters, provider_media
from parley_outbound.adapters.ratelimit import RateLimiter
from parley_outbound.adapters.saved_replies_repo import SavedReplyRepository
from parley_outbound.adapters.templates_repo import TemplateRepository
from parley_outbound.adapters.topic_replay import replay
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.handlers.broadcast_audience import AudienceResolver
from parley_outbound.handlers.broadcast_projections import AudienceProjection, ReplyProjection
from parley_outbound.handlers.broadcast_runner import BroadcastRunner
from parley_outbound.handlers.broadcasts_service import BroadcastService
from parley_outbound.handlers.delivery import Delivery
from parley_outbound.handlers.http_broadcasts import broadcasts_router
from parley_outbound.handlers.http_channels import channels_router
from parley_outbound.handlers.http_messages import messages_router
from parley_outbound.handlers.http_saved_replies import saved_replies_router
from parley_outbound.handlers.http_templates import templates_router
from parley_outbound.handlers.http_windows import windows_router
from parley_outbound.handlers.inbound_projection import InboundMessagesProjection
from parley_outbound.handlers.phone_recipient import PhoneRecipients
from parley_outbound.handlers.projection_rebuild import ProjectionRebuild
from parley_outbound.handlers.projections import (
    ContactFieldsProjection,
    ContactProjections,
    MediaProjection,
    PreferenceProjection,
    StatusProjection,
    TemplateStatusProjection,
    WindowProjection,
)
from parley_outbound.handlers.sending import Sender
from parley_outbound.handlers.updates import UpdatePublisher
from parley_outbound.settings import OutboundSettings

SERVICE = "outbound"
REPLAY_CLIENT = "parley-outbound-rebuild"


def provider_client(settings: OutboundSettings) -> httpx.AsyncClient:
    """The providers' HTTP client: httpx for the adapters over aiohttp's pool (adapters/http_transport.py), a
    connection per concurrent call kept alive between batches, plus room for template syncs and media uploads."""
    return httpx.AsyncClient(timeout=settings.provider_timeout_seconds,
                             transport=AiohttpTransport(max_connections=settings.send_concurrency + 50))


def create_app(settings: OutboundSettings, *, channels: Channels | None = None,
               clock: Clock | None = None) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=True)
    declare_published(runtime.broker, settings.infra.namespace, OUTBOUND_REQUESTS, OUTBOUND_MESSAGES,
                      CONVERSATIONS_COMMANDS, DEAD_LETTERS)
    channels = channels or load_channels_or_exit(settings.infra.channels_file, "parley-outbound")
    clock = clock or SystemClock()
    http = provider_client(settings)
    messages = MessageRepository(runtime.db)
    audience = AudienceRepository(runtime.db)
    rebuild = projection_rebuild(settings, runtime, audience, messages, clock)
    projections = WindowStore(runtime.redis, settings.infra.redis_prefix(), on_lost=rebuild.wake)
    updates = UpdatePublisher(runtime.publisher)
    delivery = Delivery(adapters(http, provider_media(settings, http, runtime.redis)),
                        RateLimiter(runtime.redis, settings.infra.redis_prefix()), settings)
    templates = TemplateRepository(runtime.db)
    media = MediaStore(runtime.redis, settings.infra.redis_prefix())
    saved_replies = SavedReplyRepository(runtime.db)
    contact_fields = ContactFieldsStore(runtime.redis, settings.infra.redis_prefix(), on_lost=rebuild.wake)
    parked = ParkedStatusRepository(runtime.db)
    statuses = StatusProjection(messages, parked, updates, clock)
    sender = Sender(messages=messages, projections=projections, templates=templates, media=media, updates=updates,
                    saved_replies=saved_replies, contact_fields=contact_fields, channels=channels,
                    delivery=delivery, clock=clock, media_base_url=settings.media_base_url,
                    stuck_after=timedelta(seconds=settings.stuck_after_seconds),
                    templates_mandatory=frozenset(settings.templates_mandatory_channels),
                    apply_parked_statuses=statuses.apply_parked, find_parked=parked.with_parked,
                    pending=PendingMessages(runtime.redis, settings.infra.redis_prefix()),
                    send_concurrency=settings.send_concurrency, write_chunk=settings.write_chunk_records)
    visibility = VisibilityProjection(runtime.db)
    broadcasts = BroadcastRepository(runtime.db)
    replies = BroadcastReplies(runtime.redis, settings.infra.redis_prefix())
    resolver = AudienceResolver(audience, projections, channels)
    runner = BroadcastRunner(repo=broadcasts, resolver=resolver, sender=sender, replies=replies, clock=clock,
                             settings=settings)
    windows = WindowProjection(projections)
    projected = Projections(windows=windows, statuses=statuses, media=MediaProjection(media),
                            contacts=ContactProjections(projections, windows, ContactFieldsProjection(contact_fields)),
                            audience=AudienceProjection(audience),
                            inbound=InboundMessagesProjection(projections, windows,
                                                              ReplyProjection(replies, messages)),
                            preferences=PreferenceProjection(projections, MarketingPreferenceRepository(runtime.db)),
                            visibility=visibility, templates=TemplateStatusProjection(templates))
    for group in consumer_groups(settings, sender, projected):
        consume_group(runtime.broker, group, namespace=settings.infra.namespace, publisher=runtime.publisher,
                      service=SERVICE, channels=channels)

    background = contextlib.AsyncExitStack()

    async def reconcile_once_running() -> None:
        # Publishing before the broker has started makes its start hang (FastStream 0.7): wait for it.
        while not runtime.broker.running:  # noqa: ASYNC110 - FastStream offers no "started" event
            await asyncio.sleep(0.05)
        await sender.reconcile()
        await runner.run_forever()  # broadcasts publish: the broker must be running as well

    async def start() -> None:
        await messages.ensure_indexes()
        await parked.ensure_indexes()
        await templates.ensure_indexes()
        await saved_replies.ensure_indexes()
        await audience.ensure_indexes()
        await broadcasts.ensure_indexes()
        await background.enter_async_context(running(reconcile_once_running(), rebuild.run_forever()))

    async def stop() -> None:
        try:
            await background.aclose()  # the runner claims no broadcast after this
        finally:
            await runner.stop()

    app = answering_rebuilding(build_service(
        service=SERVICE,
        title="Parley outbound",
        description="sending within channel rules: windows, templates, adapters",
        infra=settings.infra,
        routers=[messages_router(sender, visibility, PhoneRecipients(audience, projections, clock),
                                 Admission(settings.max_sends_in_flight, "sends"),
                                 LingerGate(settings.send_linger_ms / 1000)),
                 windows_router(sender, visibility), channels_router(channels),
                 templates_router(templates, channels, http), saved_replies_router(saved_replies, clock),
                 broadcasts_router(BroadcastService(broadcasts, messages, templates, resolver, channels, clock,
                                                    runner.wake))],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        replica_leases=runtime.replica_leases,
        on_startup=[start],
        on_shutdown=[stop, http.aclose, runtime.close],
    ))
    app.state.sender = sender
    app.state.broadcast_runner = runner
    app.state.publisher = runtime.publisher
    return app


def projection_rebuild(settings: OutboundSettings, runtime: Runtime, audience: AudienceRepository,
                       messages: MessageRepository, clock: Clock) -> ProjectionRebuild:
    """What rebuilds the cache's projections when it lost them (a reader of the topics outside any group)."""
    return ProjectionRebuild(redis=runtime.redis, prefix=settings.infra.redis_prefix(),
                             namespace=settings.infra.namespace, audience=audience,
                             preferences=MarketingPreferenceRepository(runtime.db),
                             messages=messages, owners=VisibilityProjection(runtime.db), clock=clock,
                             replay=lambda topics, batch: replay(settings.infra, topics, REPLAY_CLIENT, batch),
                             check_seconds=settings.projection_check_seconds)


def answering_rebuilding(app: FastAPI) -> FastAPI:
    """ProjectionsRebuilding, wherever a request met it, answered 503 `window_facts_rebuilding`."""

    async def rebuilding_answer(_: Request, exc: Exception) -> JSONResponse:
        """The cache lost the window facts and they are being rebuilt: retryable, never a refusal (nothing
        stored)."""
        return JSONResponse(error_body("window_facts_rebuilding", "the cache lost the messaging windows and they "
                                       "are being rebuilt; nothing was stored: try again after Retry-After seconds"),
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    app.add_exception_handler(ProjectionsRebuilding, rebuilding_answer)
    return app


@dataclass(frozen=True)
class Projections:
    """What outbound keeps from other services' topics."""

    windows: WindowProjection
    statuses: StatusProjection
    media: MediaProjection
    contacts: ContactProjections  # blocked identities and custom fields, from one pipeline per batch
    audience: AudienceProjection
    inbound: InboundMessagesProjection  # windows and broadcasts' replies, from one pipeline per batch
    preferences: PreferenceProjection
    visibility: VisibilityProjection
    templates: TemplateStatusProjection


def consumer_groups(settings: OutboundSettings, sender: Sender, projected: Projections) -> list[ConsumerGroup]:
    """Two groups: the projections, and the sends apart — an agent's reply must not wait behind a projection's
    batch (a tenant's whole contact base arriving at once), and the sends' batches overlap in several consumers
    (`send_consumers`). Until issue 17 each topic had a group of its own (`outbound-<name>`): their offsets are
    adopted once (parley_common.group_offsets)."""

    projections = ConsumerGroup("parley-outbound.events", (
        # the window, and a customer's answer counted for its broadcast: one Redis round trip per batch
        Reads(INBOUND_MESSAGES, projected.inbound.on_batch, whole_batch=True, formerly=("outbound-windows",)),
        Reads(INBOUND_PREFERENCES, projected.preferences.on_preference, formerly=("outbound-preferences",)),
        # one reader of conversation events keeps both the thread facts and who may see each customer
        *visibility_reads(projected.visibility, "outbound",
                          also_on_conversations=projected.windows.on_conversations_changed),
        # both Redis projections of contacts' events, one pipeline per batch
        Reads(CONTACTS_EVENTS, projected.contacts.on_batch, whole_batch=True, formerly=("outbound-contacts",)),
        # and the audience (MongoDB) in bulk, at the same time: a tenant's whole contact base may arrive at once
        Reads(CONTACTS_EVENTS, projected.audience.on_batch, whole_batch=True, formerly=("outbound-audience",)),
        Reads(INBOUND_STATUSES, projected.statuses.on_status, formerly=("outbound-statuses",)),
        Reads(MEDIA_EVENTS, projected.media.on_media_event, formerly=("outbound-media",)),
        Reads(CHANNEL_UPDATES, projected.templates.on_channel_update, formerly=("outbound-channel-updates",)),
    ), max_records=settings.batch_records)
    # whole batches: the send pipeline writes them in bulk; with `send_consumers` > 1 the consumers of one group
    # overlap one batch's recording and announcing with the next batches' provider calls (one by default: each
    # more is a fetch loop of its own while records flow; pods added on the group's lag overlap them as well)
    sends = ConsumerGroup("parley-outbound.sends", (
        Reads(OUTBOUND_REQUESTS, sender.handle_batch, whole_batch=True, formerly=("outbound-sender",)),
    ), members=settings.send_consumers, max_records=settings.batch_records,
        why="Agents' replies: a group of their own, so they never wait behind the projections' batches.")
    return [projections, sends]


def main() -> None:
    run_service("parley-outbound", OutboundSettings, create_app)
