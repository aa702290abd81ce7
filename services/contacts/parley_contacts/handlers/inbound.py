"""Consumer of parley.inbound.messages.v1: creates contacts on first messages, records last-seen and platform
names, publishes ContactCreated / ContactUpdated.

A consumer batch's messages come in one call (`Reads(whole_batch=True)`) and are stored in a few bulk round trips
whatever its size (adapters/sightings.py); the batch is committed only after it is stored and its events are
published."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from parley_common.events.contacts import ContactCreated, ContactEvent, ContactUpdated, Identity
from parley_common.events.inbound import MessageReceived
from parley_common.kafka import EventPublisher
from parley_common.topics import CONTACTS_EVENTS
from parley_contacts.adapters.sightings import Recorded, SightingsStore
from parley_contacts.domain.inbound import derived_event_id, per_customer


class InboundHandler:
    def __init__(self, store: SightingsStore, publisher: EventPublisher, now: Callable[[], datetime]) -> None:
        self._store = store
        self._publisher = publisher
        self._now = now

    async def __call__(self, events: list[MessageReceived]) -> None:
        sightings = per_customer(events)
        if not sightings:
            return  # machine mail only
        recorded = await self._store.record(sightings)
        # at once, in order: the producer sends them in a few requests instead of one acknowledged round trip each
        await self._publisher.publish_together(self.events_of(recorded), CONTACTS_EVENTS)

    def events_of(self, recorded: Recorded) -> list[ContactEvent]:
        events: list[ContactEvent] = []
        for sighting, card in recorded.created:
            source = sighting.event
            events.append(ContactCreated(
                event_id=derived_event_id(uuid.UUID(card["created_by_event_id"]), "created"), occurred_at=self._now(),
                tenant_id=source.tenant_id, correlation_id=source.correlation_id, contact_id=card["_id"],
                identities=(Identity(channel_id=source.channel_id, external_user_id=source.external_user_id),),
                display_name=card.get("display_name") or card.get("platform_name"),
                phones=tuple(card.get("phones") or ())))
        for sighting, contact_id, changes in recorded.renamed:
            source = sighting.event
            events.append(ContactUpdated(
                event_id=derived_event_id(uuid.UUID(changes["platform_name_event_id"]), "platform_name"),
                occurred_at=self._now(),
                tenant_id=source.tenant_id, correlation_id=source.correlation_id, contact_id=contact_id,
                changed={"platform_name": changes["platform_name"]}))
        return events
