"""HTTP: /webhooks/{channel_type}/{channel_id}: Meta's GET handshake and every channel's POST."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from parley_common.admission import Admission
from parley_common.bounds import BodyTooLarge, limited
from parley_common.channels import AnyChannel, Channels, InstagramChannel, MessengerChannel, WhatsAppChannel
from parley_common.errors import ApiError
from parley_common.events.common import ChannelType
from parley_ingest import metrics
from parley_ingest.adapters.dedup import DedupUnavailable
from parley_ingest.adapters.identities import IdentityStoreUnavailable
from parley_ingest.adapters.kafka_link import BrokerUnavailable, EventTooLarge, UnpublishableEvent
from parley_ingest.domain.model import Batch, MalformedPayload, Rejected, RequestContext, raw_bytes
from parley_ingest.domain.providers.base import ChannelPlugin
from parley_ingest.domain.signatures import secret_matches
from parley_ingest.handlers.intake import Intake

log = structlog.get_logger(__name__)
PATH = "/webhooks/{channel_type}/{channel_id}"


# Bodies from this size on (and every email) are parsed in a worker thread: the event loop keeps answering.
OFF_LOOP_BYTES = 256 * 1024


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_email_bytes: int
    max_in_flight: int


class Normaliser:
    """Runs a plugin's normaliser: small JSON bodies inline (a thread hop would cost more than the parse), emails
    and large bodies in a small pool of worker threads with a time budget. A parse over its budget is answered
    413 and dead-lettered; its thread cannot be stopped, but the limits checked before parsing bound it."""

    def __init__(self, budget_seconds: float, workers: int = 2) -> None:
        self.budget = budget_seconds
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest-parse")

    async def normalise(self, plugin: ChannelPlugin, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        if channel.type != ChannelType.EMAIL and len(body) < OFF_LOOP_BYTES:
            return plugin.normalise(channel, body, ctx)
        work = asyncio.get_running_loop().run_in_executor(self.pool, plugin.normalise, channel, body, ctx)
        try:
            return await asyncio.wait_for(work, self.budget)
        except TimeoutError:
            raise MalformedPayload("parse_budget_exceeded", f"parsing took longer than {self.budget:g} s",
                                   status=413) from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def webhook_router(channels: Channels, intake: Intake, limits: Limits,
                   plugins: Mapping[ChannelType, ChannelPlugin], normaliser: Normaliser) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    admission = Admission(limits.max_in_flight, "webhooks")

    @router.get(PATH, summary="Meta webhook subscription handshake (WhatsApp, Messenger, Instagram)")
    async def handshake(channel_type: str, channel_id: str, request: Request) -> PlainTextResponse:
        channel, plugin = _resolve(channels, plugins, channel_type, channel_id)
        if not plugin.handshake or not isinstance(channel, WhatsAppChannel | MessengerChannel | InstagramChannel):
            raise ApiError(405, "handshake_not_supported", f"{channel_type} has no GET handshake")
        params = request.query_params
        token_ok = secret_matches(channel.verify_token.get_secret_value(), params.get("hub.verify_token"))
        if params.get("hub.mode") != "subscribe" or not token_ok:
            metrics.SIGNATURE_FAILURES.labels(channel.type.value).inc()
            raise ApiError(403, "verify_token_mismatch", "hub.mode or hub.verify_token is wrong")
        return PlainTextResponse(params.get("hub.challenge", ""))

    @router.post(PATH, summary="Receive a provider webhook: verify, normalise, de-duplicate, publish",
                 description="200 `{status: accepted, published, duplicates, dead_lettered}`; a Viber "
                             "`conversation_started` to a channel with a `welcome_message` is answered with that "
                             "message instead (`send_message` JSON without `receiver`: Viber delivers it).")
    async def receive(channel_type: str, channel_id: str, request: Request) -> JSONResponse:
        try:
            channel, plugin = _resolve(channels, plugins, channel_type, channel_id)
        except ApiError as error:
            metrics.REQUESTS.labels(channel_type if channel_type in plugins else "unknown", error.code).inc()
            raise
        try:
            with admission.slot():
                outcome, reply = await _receive(channel, plugin, request, intake, limits, normaliser)
        except ApiError as error:
            metrics.REQUESTS.labels(channel.type.value, error.code).inc()
            raise
        metrics.REQUESTS.labels(channel.type.value, "accepted").inc()
        return JSONResponse(reply if reply is not None else {"status": "accepted", **outcome})

    return router


def _resolve(channels: Channels, plugins: Mapping[ChannelType, ChannelPlugin], channel_type: str,
             channel_id: str) -> tuple[AnyChannel, ChannelPlugin]:
    try:
        plugin = plugins[ChannelType(channel_type)]
    except ValueError:
        raise ApiError(404, "unknown_channel_type", f"no channel type {channel_type!r}") from None
    channel = channels.get(channel_id)
    if channel is None:
        raise ApiError(404, "unknown_channel", f"no channel {channel_id!r}")
    if channel.type != plugin.channel_type:
        raise ApiError(404, "channel_type_mismatch", f"channel {channel_id!r} is not a {channel_type} channel")
    return channel, plugin


async def _receive(channel: AnyChannel, plugin: ChannelPlugin, request: Request, intake: Intake,
                   limits: Limits, normaliser: Normaliser) -> tuple[dict[str, int], dict[str, Any] | None]:
    limit = limits.max_email_bytes if channel.type == ChannelType.EMAIL else limits.max_body_bytes
    body = await _read_body(request, limit)
    if not plugin.verify(channel, request.headers, body):
        metrics.SIGNATURE_FAILURES.labels(channel.type.value).inc()
        log.warning("webhook_signature_failed", channel_id=channel.id, channel_type=channel.type.value)
        raise ApiError(401, "invalid_signature", "the webhook signature or secret is missing or wrong")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in plugin.content_types:
        raise ApiError(415, "unsupported_media_type", f"expected {', '.join(plugin.content_types)}")
    ctx = RequestContext(channel.tenant_id, channel.id, channel.type, request.state.correlation_id,
                         datetime.now(UTC), body_size=len(body))
    try:
        batch = await normaliser.normalise(plugin, channel, body, ctx)
    except MalformedPayload as bad:
        await _refuse(intake, ctx, body, bad)
    try:
        outcome = await _publish(intake, ctx, batch)
    except UnpublishableEvent as bad:  # can never be published: retrying cannot help, so no 503
        await _refuse(intake, ctx, body, MalformedPayload("unpublishable_event", str(bad)))
    log.info("webhook_accepted", channel_id=channel.id, channel_type=channel.type.value, **outcome)
    return outcome, batch.reply


async def _refuse(intake: Intake, ctx: RequestContext, body: bytes, bad: MalformedPayload) -> NoReturn:
    """Authentic but unreadable: keep its bytes on the DLQ (bounded) before refusing it."""
    await _publish(intake, ctx, Batch(rejected=[Rejected(bad.code, str(bad), raw_bytes(body))]))
    raise ApiError(bad.status, bad.code, str(bad))


async def _publish(intake: Intake, ctx: RequestContext, batch: Batch) -> dict[str, int]:
    try:
        outcome = await intake.accept(ctx, batch)
    except BrokerUnavailable:
        raise ApiError(503, "broker_unavailable", "events could not be stored; retry later") from None
    except IdentityStoreUnavailable as unavailable:
        raise ApiError(503, "identity_store_unavailable",
                       f"customer keys could not be looked up ({unavailable}); retry later") from None
    except DedupUnavailable:
        raise ApiError(503, "dedup_unavailable", "the duplicate check could not be made; retry later") from None
    except EventTooLarge:
        raise ApiError(413, "event_too_large", "an event of this request exceeds the broker's size limit") from None
    return {"published": outcome.published, "duplicates": outcome.duplicates,
            "dead_lettered": outcome.dead_lettered}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    try:
        return await Request(request.scope, limited(request.receive, limit)).body()
    except BodyTooLarge:
        raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes") from None
