"""Consumer of parley.inbound.messages.v1: creates contacts on first messages, records last-seen and platform
names, publishes ContactCreated / ContactUpdated.

Records of several partitions are handled concurrently (one consumer per worker) and coalesced into one
bulk write by `Batcher`; each record's offset is committed only after its batch is stored and published."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Generic, TypeVar

from parley_common.events.contacts import ContactCreated, ContactEvent, ContactUpdated, Identity
from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher
from parley_common.topics import CONTACTS_EVENTS
from parley_contacts.adapters.sightings import Recorded, SightingsStore
from parley_contacts.domain.inbound import derived_event_id, latest_per_customer

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects items submitted concurrently; flushes when `max_size` are waiting or `max_wait` passed.
    Every submitter gets its batch's outcome: success, or the exception (then Kafka redelivers)."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], max_size: int, max_wait: float) -> None:
        self._flush = flush
        self._max_size = max_size
        self._max_wait = max_wait
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._timer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if len(self._pending) >= self._max_size:
            await self._run()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._later())
        await done

    async def _later(self) -> None:
        await asyncio.sleep(self._max_wait)
        self._timer = None
        await self._run()

    async def _run(self) -> None:
        batch, self._pending = self._pending, []
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
            self._timer = None
        if not batch:
            return
        try:
            await self._flush([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - each waiting record fails, so none is committed
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self._run()


class InboundHandler:
    def __init__(self, store: SightingsStore, publisher: EventPublisher, now: Callable[[], datetime],
                 max_batch: int = 200, max_wait: float = 0.005) -> None:
        self._store = store
        self._publisher = publisher
        self._now = now
        self.batcher: Batcher[MessageReceived] = Batcher(self.handle_batch, max_batch, max_wait)

    async def __call__(self, event: MessageReceived) -> None:
        await self.batcher.submit(event)

    async def handle_batch(self, events: list[MessageReceived]) -> None:
        sightings = latest_per_customer(events)
        if not sightings:
            return  # machine mail only
        recorded = await self._store.record(sightings)
        for contact_event in self.events_of(recorded):
            await self._publisher.publish(contact_event, CONTACTS_EVENTS)

    def events_of(self, recorded: Recorded) -> list[ContactEvent]:
        events: list[ContactEvent] = []
        for sighting, card in recorded.created:
            source = sighting.event
            events.append(ContactCreated(
                event_id=derived_event_id(source.event_id, "created"), occurred_at=self._now(),
                tenant_id=source.tenant_id, correlation_id=source.correlation_id, contact_id=card["_id"],
                identities=(Identity(channel_id=source.channel_id, external_user_id=source.external_user_id),),
                display_name=card.get("display_name") or card.get("platform_name"),
                phones=tuple(card.get("phones") or ())))
        for sighting, contact_id, changes in recorded.renamed:
            source = sighting.event
            events.append(ContactUpdated(
                event_id=derived_event_id(source.event_id, "platform_name"), occurred_at=self._now(),
                tenant_id=source.tenant_id, correlation_id=source.correlation_id, contact_id=contact_id,
                changed={"platform_name": changes["platform_name"]}))
        return events
