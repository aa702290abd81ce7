"""The use cases behind /v1/subscriptions: every call is scoped to the caller's tenant."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from parley_common.auth import Principal
from parley_common.errors import ApiError
from parley_common.events.webhooks import WebhookSubscriptionResumed
from parley_common.ids import new_id
from parley_common.kafka import EventPublisher
from parley_common.topics import WEBHOOKS_EVENTS
from parley_hooks.adapters.store import ACTIVE, PAUSED, DeliveryStore, Doc, SubscriptionStore
from parley_hooks.domain.targets import TargetPolicy, TargetRefused, parse_target
from parley_hooks.handlers import schemas as s
from parley_hooks.handlers.dispatcher import Dispatcher

MAX_REPLAY = 1000


class SubscriptionService:
    def __init__(self, subscriptions: SubscriptionStore, deliveries: DeliveryStore, dispatcher: Dispatcher,
                 publisher: EventPublisher, policy: TargetPolicy, known_types: set[str], max_per_tenant: int,
                 now: Callable[[], datetime], secret_overlap: timedelta) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._dispatcher = dispatcher
        self._publisher = publisher
        self._policy = policy
        self._known_types = known_types
        self._max_per_tenant = max_per_tenant
        self._now = now
        self._secret_overlap = secret_overlap

    async def create(self, caller: Principal, body: s.SubscriptionCreate) -> s.SubscriptionCreated:
        self._check(body.url, body.event_types)
        if await self._subscriptions.count(caller.tenant_id) >= self._max_per_tenant:
            raise ApiError(409, "too_many_subscriptions",
                           f"a tenant has at most {self._max_per_tenant} subscriptions")
        now = self._now()
        doc = {"_id": new_id(), "tenant_id": caller.tenant_id, "url": body.url,
               "event_types": sorted(set(body.event_types)), "description": body.description,
               "secret": body.secret or f"whsec_{secrets.token_urlsafe(32)}", "status": ACTIVE, "created_at": now,
               "updated_at": now, "created_by": caller.login, "paused_at": None, "paused_reason": None,
               "last_error": None}
        await self._subscriptions.insert(doc)
        return s.SubscriptionCreated(**shown(doc, 0), secret=doc["secret"])

    async def all_of(self, caller: Principal) -> s.SubscriptionList:
        docs = await self._subscriptions.of_tenant(caller.tenant_id)
        return s.SubscriptionList(items=[s.Subscription(**shown(doc, await self._deliveries.pending_count(doc["_id"])))
                                         for doc in docs])

    async def get(self, caller: Principal, subscription_id: str) -> s.Subscription:
        doc = await self._owned(caller, subscription_id)
        return s.Subscription(**shown(doc, await self._deliveries.pending_count(doc["_id"])))

    async def update(self, caller: Principal, subscription_id: str, body: s.SubscriptionUpdate) -> s.Subscription:
        doc = await self._owned(caller, subscription_id)
        self._check(body.url, body.event_types)  # what changes; pausing never fails on what is already there
        changes: Doc = {key: value for key, value in (("url", body.url), ("secret", body.secret),
                                                      ("description", body.description)) if value is not None}
        if body.event_types is not None:
            changes["event_types"] = sorted(set(body.event_types))
        if body.secret is not None and body.secret != doc["secret"]:
            changes |= {"previous_secret": doc["secret"], "previous_secret_until": self._now() + self._secret_overlap}
        if changes:
            doc = await self._subscriptions.update(subscription_id, {**changes, "updated_at": self._now()}) or doc
        if body.status == PAUSED and doc["status"] == ACTIVE:
            doc = await self._dispatcher.pause(doc, "by_request", 0, None) or doc
        elif body.status == ACTIVE and doc["status"] == PAUSED:
            doc = await self._resume(caller, doc)
        return s.Subscription(**shown(doc, await self._deliveries.pending_count(doc["_id"])))

    async def delete(self, caller: Principal, subscription_id: str) -> None:
        await self._owned(caller, subscription_id)
        await self._subscriptions.delete(subscription_id)
        await self._deliveries.forget_subscription(subscription_id)

    async def deliveries(self, caller: Principal, subscription_id: str, status: str | None, before: datetime | None,
                         limit: int) -> s.DeliveryList:
        await self._owned(caller, subscription_id)
        docs = await self._deliveries.page(subscription_id, status, before, limit)
        return s.DeliveryList(items=[s.Delivery(**delivery_shown(doc)) for doc in docs],
                              next_before=docs[-1]["created_at"] if len(docs) == limit else None)

    async def delivery(self, caller: Principal, subscription_id: str, delivery_id: str) -> s.DeliveryWithEvent:
        await self._owned(caller, subscription_id)
        doc = await self._deliveries.get(subscription_id, delivery_id)
        if doc is None:
            raise ApiError(404, "delivery_not_found", "no such delivery of this subscription")
        return s.DeliveryWithEvent(**delivery_shown(doc), event=json.loads(doc["body"]))

    async def replay_one(self, caller: Principal, subscription_id: str, delivery_id: str) -> s.Replayed:
        await self._owned(caller, subscription_id)
        doc = await self._deliveries.get(subscription_id, delivery_id)
        if doc is None:
            raise ApiError(404, "delivery_not_found", "no such delivery of this subscription")
        return await self._replay([doc])

    async def replay_window(self, caller: Principal, subscription_id: str, body: s.ReplayWindow) -> s.Replayed:
        await self._owned(caller, subscription_id)
        if body.until <= body.since:
            raise ApiError(422, "invalid_window", "`until` comes after `since`")
        docs = await self._deliveries.delivered_between(subscription_id, body.since, body.until, MAX_REPLAY)
        wanted = set(body.event_types or ())
        return await self._replay([doc for doc in docs if not wanted or doc["event_type"] in wanted])

    async def _replay(self, originals: list[Doc]) -> s.Replayed:
        """Each original's event again, as a new delivery after what its key already has queued."""
        now = self._now()
        copies = []
        for original in originals:
            copy_id = new_id()
            copies.append({**original, "_id": copy_id, "dedup_key": f"replay:{copy_id}", "status": "pending",
                           "attempts": 0, "failures": 0, "next_attempt_at": now, "lease_until": now,
                           "created_at": now, "delivered_at": None, "last_error": None, "last_status_code": None,
                           "log": [], "replay_of": original["_id"], "expire_at": None})
        if copies:
            await self._deliveries.enqueue(copies)
            self._dispatcher.wake.set()
        return s.Replayed(replayed=len(copies), items=[copy["_id"] for copy in copies])

    async def _resume(self, caller: Principal, doc: Doc) -> Doc:
        now = self._now()
        resumed = await self._subscriptions.set_status(doc["_id"], PAUSED, {
            "status": ACTIVE, "paused_at": None, "paused_reason": None, "updated_at": now})
        if resumed is None:
            return doc
        await self._deliveries.retry_now(doc["_id"], now)
        await self._publisher.publish(WebhookSubscriptionResumed(
            occurred_at=now, tenant_id=caller.tenant_id, correlation_id=doc["_id"], subscription_id=doc["_id"],
            description=doc.get("description"), resumed_at=now, actor=caller.login), WEBHOOKS_EVENTS)
        self._dispatcher.wake.set()
        return resumed

    async def _owned(self, caller: Principal, subscription_id: str) -> Doc:
        doc = await self._subscriptions.get(caller.tenant_id, subscription_id)
        if doc is None:
            raise ApiError(404, "subscription_not_found", "no such subscription")
        return doc

    def _check(self, url: str | None, event_types: list[str] | None) -> None:
        try:
            if url is not None:
                parse_target(url, self._policy)
        except TargetRefused as refused:
            raise ApiError(422, refused.code, str(refused), {"field": "url"}) from None
        unknown = sorted(set(event_types or ()) - self._known_types)
        if unknown:
            raise ApiError(422, "unknown_event_type", "not an event type a subscription can receive",
                           {"field": "event_types", "unknown": unknown, "known": sorted(self._known_types)})


def shown(doc: Doc, pending: int) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    fields = ("url", "event_types", "description", "status", "created_at", "updated_at", "created_by", "paused_at",
              "paused_reason", "last_error")
    return {"id": doc["_id"], **{field: doc.get(field) for field in fields}, "pending": pending}


def delivery_shown(doc: Doc) -> dict[str, Any]:
    fields = ("subscription_id", "event_id", "event_type", "key", "status", "attempts", "failures",
              "created_at", "delivered_at", "last_status_code", "last_error", "replay_of", "log")
    shown_fields = {field: doc.get(field) for field in fields}
    shown_fields["next_attempt_at"] = doc.get("next_attempt_at") if doc.get("status") == "pending" else None
    return {"id": doc["_id"], **shown_fields}
