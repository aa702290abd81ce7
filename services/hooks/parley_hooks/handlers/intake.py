"""From the public topics into the subscriptions' queues: each event goes to every subscription of its tenant
that asked for its type and existed when it happened, numbered after the earlier events of its key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from parley_common.events.envelope import Envelope
from parley_common.ids import new_id
from parley_hooks.adapters.store import PENDING, DeliveryStore, Doc, SubscriptionStore
from parley_hooks.domain.events import structured
from parley_hooks.metrics import ENQUEUED


class Intake:
    def __init__(self, subscriptions: SubscriptionStore, deliveries: DeliveryStore, topic: str,
                 now: Callable[[], datetime], wake: asyncio.Event) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._topic = topic
        self._now = now
        self._wake = wake

    async def __call__(self, events: list[Any]) -> None:
        by_tenant: dict[str, list[Doc]] = {}
        for subscription in await self._subscriptions.of_tenants(sorted({event.tenant_id for event in events})):
            by_tenant.setdefault(subscription["tenant_id"], []).append(subscription)
        now = self._now()
        deliveries = [delivery(subscription, event, self._topic, now)
                      for event in events for subscription in by_tenant.get(event.tenant_id, ())
                      if event.type in subscription["event_types"] and event.occurred_at >= subscription["created_at"]]
        added = await self._deliveries.enqueue(deliveries) if deliveries else 0
        if added:
            ENQUEUED.inc(added)
            self._wake.set()


def delivery(subscription: Doc, event: Envelope, topic: str, now: datetime) -> Doc:
    return {
        "_id": new_id(), "tenant_id": subscription["tenant_id"], "subscription_id": subscription["_id"],
        "dedup_key": str(event.event_id), "key": event.partition_key().decode(), "event_id": str(event.event_id),
        "event_type": str(getattr(event, "type", "")), "topic": topic, "occurred_at": event.occurred_at,
        "body": structured(event).decode(), "status": PENDING, "attempts": 0, "failures": 0,
        "next_attempt_at": now, "lease_until": now, "created_at": now, "delivered_at": None, "last_error": None,
        "last_status_code": None, "log": [], "replay_of": None, "expire_at": None,
    }
