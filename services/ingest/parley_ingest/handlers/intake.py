"""One webhook's normalised batch → de-duplicated → published (acks=all) → marked as seen."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import structlog

from parley_common.batching import LingerGate
from parley_common.events.channels import ChannelHealthReported, TemplateUpdated
from parley_common.events.dlq import DeadLetter, original_value_fields
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import DeliveryStatusReported, EmailAttachmentReceived, MarketingPreferenceChanged
from parley_common.topics import (
    CHANNEL_UPDATES,
    DEAD_LETTERS,
    INBOUND_ATTACHMENTS,
    INBOUND_MESSAGES,
    INBOUND_PREFERENCES,
    INBOUND_STATUSES,
    Topic,
)
from parley_ingest import metrics
from parley_ingest.adapters.dedup import DedupStore
from parley_ingest.adapters.identities import IdentityStore
from parley_ingest.adapters.kafka_link import KafkaLink
from parley_ingest.domain.dedup import dedup_key
from parley_ingest.domain.identities import IdentityClaim, Scoped, ScopedClaim
from parley_ingest.domain.model import Batch, Rejected, RequestContext, stable_event_id

SERVICE = "ingest"
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    published: int
    duplicates: int
    dead_lettered: int


@dataclass(frozen=True)
class _Item:
    event: Envelope
    topic: Topic
    dedup_key: str
    claim: ScopedClaim | None = None  # the identifiers of the event's customer, when it names one


def _claims(items: list[_Item]) -> list[ScopedClaim]:
    return [item.claim for item in items if item.claim is not None]


def _keyed(items: list[_Item], keys: list[str]) -> list[_Item]:
    """Each item that names a customer under the key found for it (`keys`: one per such item, in order; the
    links' keys after them are not needed)."""
    found = iter(keys)
    return [replace(item, event=item.event.model_copy(update={"external_user_id": key}))
            if item.claim is not None and (key := next(found)) != getattr(item.event, "external_user_id", None)
            else item for item in items]


def topic_for(event: Envelope) -> Topic:
    if isinstance(event, DeliveryStatusReported):
        return INBOUND_STATUSES
    if isinstance(event, EmailAttachmentReceived):
        return INBOUND_ATTACHMENTS
    if isinstance(event, MarketingPreferenceChanged):
        return INBOUND_PREFERENCES
    if isinstance(event, TemplateUpdated | ChannelHealthReported):
        return CHANNEL_UPDATES
    if isinstance(event, DeadLetter):
        return DEAD_LETTERS
    return INBOUND_MESSAGES


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # holding or waiting


class KeyTurns:
    """Requests of this process that share a key take turns: when a provider delivered one webhook twice at
    once, both copies passed the check before either was marked, and both were published (a flaky journey test
    showed it). Keys are taken in sorted order, so no two requests wait for each other in a circle. (Replicas
    still race each other: a copy published twice is a duplicate that every consumer ignores.)"""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def of(self, keys: Iterable[str]) -> AsyncIterator[None]:
        counted: list[str] = []  # waiting or holding
        holding: list[str] = []
        try:
            for key in sorted(set(keys)):
                turn = self._turns.setdefault(key, _Turn())
                turn.holders += 1
                counted.append(key)
                await turn.lock.acquire()
                holding.append(key)
            yield
        finally:
            for key in holding:
                self._turns[key].lock.release()
            for key in counted:
                turn = self._turns[key]
                turn.holders -= 1
                if not turn.holders:
                    del self._turns[key]


class Intake:
    def __init__(self, link: KafkaLink, dedup: DedupStore, identities: IdentityStore, redis_prefix: str,
                 linger_seconds: float = 0.0) -> None:
        self._link = link
        self._dedup = dedup
        self._identities = identities
        self._prefix = redis_prefix
        self._turns = KeyTurns()
        self._gate = LingerGate(linger_seconds)  # webhooks close together share every round trip below

    async def accept(self, ctx: RequestContext, batch: Batch) -> Outcome:
        """Raises BrokerUnavailable when Kafka did not acknowledge everything (nothing is marked then), and
        IdentityStoreUnavailable or DedupUnavailable when the customers' keys or the duplicate check could not be
        had (nothing is published then). Its cache round trips: one read (the duplicate check with the cached
        identities) and one write after publishing (the marks with the ranks to cache), each shared with the other
        webhooks in flight (adapters/cache.py) — those arriving close together go on together to share them
        (`LingerGate`)."""
        items = [self._item(ctx, n.event, n.dedup_kind, n.dedup_id, n.identity) for n in batch.events]
        items += [self._item(ctx, letter, "rejected", _rejected_id(r)) for r, letter in _letters(ctx, batch)]
        links = [ScopedClaim(link.tenant_id, link.channel_id, link.claim) for link in batch.links]
        keys = [item.dedup_key for item in items]
        async with self._gate.passage(), self._turns.of(keys):
            seen, cached = await self._looked_up(keys, [*_claims(items), *links])
            # a duplicate was published under its key already: only the fresh events' customers are looked for
            fresh = [item for item, was_seen in zip(items, seen, strict=True) if not was_seen]
            keyed = await self._identities.keys_for([*_claims(fresh), *links], cached)
            fresh = _keyed(fresh, keyed.keys)
            started = time.perf_counter()
            try:
                await self._link.publish_all([(item.event, item.topic) for item in fresh])
            except Exception:
                await self._identities.remember(keyed.ranks)  # what the database holds now, published or not
                raise
            metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
            marking = self._dedup.mark([item.dedup_key for item in fresh])
            if keyed.ranks:  # both in this turn: one round trip (adapters/cache.py)
                await asyncio.gather(marking, self._identities.remember(keyed.ranks))
            else:  # a known customer: no task to start
                await marking
        return self._count(ctx, fresh, duplicates=len(items) - len(fresh))

    async def _looked_up(self, keys: list[str], claims: list[ScopedClaim]) -> tuple[list[bool], dict[Scoped, str]]:
        """The duplicate check and the cached identities, in one cache read: the read's task takes its first step
        before the batch this task's check joins is sent (both asked in this turn). When the check fails, that is
        the answer (503 dedup_unavailable), without waiting for the identities."""
        reading = asyncio.ensure_future(self._identities.cached(claims))
        try:
            return await self._dedup.already_seen(keys), await reading
        finally:
            if not reading.done():
                reading.cancel()
            elif not reading.cancelled():
                reading.exception()  # retrieved: when both failed, the check's failure is the one answered

    def _item(self, ctx: RequestContext, event: Envelope, kind: str, provider_id: str,
              identity: IdentityClaim | None = None) -> _Item:
        # The event's own channel: one WhatsApp webhook may carry changes for several numbers (channels).
        channel_id = getattr(event, "channel_id", ctx.channel_id)
        key = dedup_key(self._prefix, event.tenant_id, channel_id, kind, provider_id)
        claim = ScopedClaim(event.tenant_id, channel_id, identity) if identity is not None else None
        return _Item(event, topic_for(event), key, claim)

    def _count(self, ctx: RequestContext, fresh: list[_Item], duplicates: int) -> Outcome:
        channel_type = ctx.channel_type.value
        letters = 0
        for item in fresh:
            metrics.EVENTS_PUBLISHED.labels(channel_type, item.topic.base_name).inc()
            if isinstance(item.event, DeadLetter):
                letters += 1
                metrics.DEAD_LETTERED.labels(channel_type, item.event.reason).inc()
        if duplicates:
            metrics.DUPLICATES.labels(channel_type).inc(duplicates)
        return Outcome(published=len(fresh) - letters, duplicates=duplicates, dead_lettered=letters)


def _rejected_id(rejected: Rejected) -> str:
    return hashlib.sha256(rejected.reason.encode() + b"\0" + rejected.raw).hexdigest()


def _letters(ctx: RequestContext, batch: Batch) -> list[tuple[Rejected, DeadLetter]]:
    return [(rejected, dead_letter(ctx, rejected)) for rejected in batch.rejected]


def dead_letter(ctx: RequestContext, rejected: Rejected) -> DeadLetter:
    """What we could not normalise, with the provider's bytes (bounded), so nothing is lost."""
    return DeadLetter(
        event_id=stable_event_id(ctx, "rejected", _rejected_id(rejected)),
        occurred_at=ctx.received_at,
        tenant_id=ctx.tenant_id,
        correlation_id=ctx.correlation_id,
        service=SERVICE,
        source_topic=f"webhooks/{ctx.channel_type.value}/{ctx.channel_id}",
        reason=rejected.reason,
        detail=rejected.detail,
        **original_value_fields(rejected.raw),
    )
