"""The hooks service's own MongoDB: subscriptions, deliveries (the queue and the delivery log in one), and the
per-key sequence numbers that keep one conversation's deliveries in order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.mongo import insert_new

Doc = dict[str, Any]
PENDING, DELIVERED = "pending", "delivered"
ACTIVE, PAUSED = "active", "paused"
LOG_ENTRIES_KEPT = 20  # the latest attempts of one delivery


def of_tenant(doc: Doc | None, tenant_id: str) -> Doc | None:
    """Read by `_id` alone (the local SecantusDB plans `_id` with another field as a scan), kept only when it is
    this tenant's."""
    return doc if doc is not None and doc.get("tenant_id") == tenant_id else None


class SubscriptionStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._subscriptions = db["subscriptions"]

    async def ensure_indexes(self) -> None:
        await self._subscriptions.create_indexes([
            IndexModel([("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="tenant_created"),
            IndexModel([("status", ASCENDING)], name="status"),
        ])

    async def count(self, tenant_id: str) -> int:
        return await self._subscriptions.count_documents({"tenant_id": tenant_id})

    async def insert(self, doc: Doc) -> None:
        await self._subscriptions.insert_one(doc)

    async def get(self, tenant_id: str, subscription_id: str) -> Doc | None:
        return of_tenant(await self._subscriptions.find_one({"_id": subscription_id}), tenant_id)

    async def of_tenant(self, tenant_id: str) -> list[Doc]:
        return await self._subscriptions.find({"tenant_id": tenant_id}).sort("created_at", ASCENDING).to_list(None)

    async def of_tenants(self, tenant_ids: Sequence[str]) -> list[Doc]:
        return await self._subscriptions.find({"tenant_id": {"$in": list(tenant_ids)}}).to_list(None)

    async def active(self) -> list[Doc]:
        return await self._subscriptions.find({"status": ACTIVE}).to_list(None)

    async def update(self, subscription_id: str, changes: Doc) -> Doc | None:
        return await self._subscriptions.find_one_and_update(
            {"_id": subscription_id}, {"$set": changes}, return_document=ReturnDocument.AFTER)

    async def set_status(self, subscription_id: str, was: str, changes: Doc) -> Doc | None:
        """Move from `was` to another status; None when it was not in `was` (someone else moved it first)."""
        return await self._subscriptions.find_one_and_update(
            {"_id": subscription_id, "status": was}, {"$set": changes}, return_document=ReturnDocument.AFTER)

    async def delete(self, subscription_id: str) -> None:
        await self._subscriptions.delete_one({"_id": subscription_id})


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._deliveries = db["deliveries"]
        self._sequences = db["sequences"]

    async def ensure_indexes(self) -> None:
        await self._deliveries.create_indexes([
            # one delivery per subscription and event (a redelivered Kafka batch adds nothing); replays have
            # their own dedup_key
            IndexModel([("subscription_id", ASCENDING), ("dedup_key", ASCENDING)], name="subscription_dedup",
                       unique=True),
            IndexModel([("subscription_id", ASCENDING), ("key", ASCENDING), ("status", ASCENDING),
                        ("seq", ASCENDING)], name="subscription_key_order"),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="due"),
            IndexModel([("subscription_id", ASCENDING), ("created_at", DESCENDING)], name="subscription_log"),
            IndexModel([("expire_at", ASCENDING)], name="delivered_expiry", expireAfterSeconds=0),
        ])

    async def enqueue(self, deliveries: list[Doc]) -> int:
        """Number each (subscription, key)'s new deliveries after its earlier ones, in the given order, and store
        those not stored yet; answers how many were new."""
        by_queue: dict[tuple[str, str], list[Doc]] = {}
        for delivery in deliveries:
            by_queue.setdefault((delivery["subscription_id"], delivery["key"]), []).append(delivery)
        for (subscription_id, key), queue in by_queue.items():
            counter = await self._sequences.find_one_and_update(
                {"_id": f"{subscription_id}|{key}"}, {"$inc": {"next": len(queue)}}, upsert=True,
                return_document=ReturnDocument.AFTER)
            first = int((counter or {}).get("next", len(queue))) - len(queue) + 1
            for offset, delivery in enumerate(queue):
                delivery["seq"] = first + offset
        if not deliveries:
            return 0
        return len(deliveries) - len(await insert_new(self._deliveries, deliveries))

    async def due(self, subscription_ids: Sequence[str], now: datetime, limit: int) -> list[Doc]:
        """The longest-waiting first, so a busy key cannot hold back the others."""
        return await self._deliveries.find(
            {"status": PENDING, "next_attempt_at": {"$lte": now}, "lease_until": {"$lte": now},
             "subscription_id": {"$in": list(subscription_ids)}},
            {"subscription_id": 1, "key": 1, "seq": 1},
        ).sort("next_attempt_at", ASCENDING).limit(limit).to_list(None)

    async def next_due_at(self, subscription_ids: Sequence[str]) -> datetime | None:
        first = await self._deliveries.find_one(
            {"status": PENDING, "subscription_id": {"$in": list(subscription_ids)}}, {"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)])
        return first["next_attempt_at"] if first else None

    async def has_earlier(self, delivery: Doc) -> bool:
        """A pending delivery of the same subscription and key numbered before this one: this one waits."""
        earlier = await self._deliveries.find_one(
            {"subscription_id": delivery["subscription_id"], "key": delivery["key"], "status": PENDING,
             "seq": {"$lt": delivery["seq"]}}, {"_id": 1})
        return earlier is not None

    async def claim(self, delivery_id: str, now: datetime, lease: timedelta) -> Doc | None:
        """The delivery with its body, leased to this process for `lease` (another pod finds it taken); None when
        someone else claimed it or it is no longer pending."""
        return await self._deliveries.find_one_and_update(
            {"_id": delivery_id, "status": PENDING, "lease_until": {"$lte": now}},
            {"$set": {"lease_until": now + lease}}, return_document=ReturnDocument.AFTER)

    async def record_success(self, delivery_id: str, now: datetime, entry: Doc, expire_at: datetime) -> None:
        await self._deliveries.update_one({"_id": delivery_id}, {
            "$set": {"status": DELIVERED, "delivered_at": now, "lease_until": now, "failures": 0,
                     "last_error": None, "last_status_code": entry.get("status_code"), "expire_at": expire_at},
            "$inc": {"attempts": 1},
            "$push": {"log": {"$each": [entry], "$slice": -LOG_ENTRIES_KEPT}}})

    async def record_failure(self, delivery_id: str, now: datetime, entry: Doc, next_attempt_at: datetime) -> Doc:
        """Answers the delivery after the failure (its `failures` in a row)."""
        updated = await self._deliveries.find_one_and_update({"_id": delivery_id}, {
            "$set": {"next_attempt_at": next_attempt_at, "lease_until": now, "last_error": entry["error"],
                     "last_status_code": entry.get("status_code")},
            "$inc": {"attempts": 1, "failures": 1},
            "$push": {"log": {"$each": [entry], "$slice": -LOG_ENTRIES_KEPT}}},
            projection={"body": 0, "log": 0}, return_document=ReturnDocument.AFTER)
        return updated or {}

    async def pending_count(self, subscription_id: str) -> int:
        return await self._deliveries.count_documents({"subscription_id": subscription_id, "status": PENDING})

    async def retry_now(self, subscription_id: str, now: datetime) -> None:
        """A resumed subscription: its waiting deliveries go at once, their failure streak forgotten."""
        await self._deliveries.update_many({"subscription_id": subscription_id, "status": PENDING},
                                           {"$set": {"next_attempt_at": now, "failures": 0}})

    async def page(self, subscription_id: str, status: str | None, before: datetime | None, limit: int) -> list[Doc]:
        query: Doc = {"subscription_id": subscription_id}
        if status:
            query["status"] = status
        if before:
            query["created_at"] = {"$lt": before}
        return await self._deliveries.find(query, {"body": 0}).sort("created_at", DESCENDING).limit(limit) \
            .to_list(None)

    async def get(self, subscription_id: str, delivery_id: str) -> Doc | None:
        found = await self._deliveries.find_one({"_id": delivery_id})
        return found if found is not None and found.get("subscription_id") == subscription_id else None

    async def delivered_between(self, subscription_id: str, since: datetime, until: datetime,
                                limit: int) -> list[Doc]:
        return await self._deliveries.find(
            {"subscription_id": subscription_id, "status": DELIVERED,
             "created_at": {"$gte": since, "$lt": until}},
        ).sort([("created_at", ASCENDING), ("seq", ASCENDING)]).limit(limit).to_list(None)

    async def forget_subscription(self, subscription_id: str) -> None:
        await self._deliveries.delete_many({"subscription_id": subscription_id})
        await self._sequences.delete_many({"_id": {"$regex": f"^{subscription_id}\\|"}})
