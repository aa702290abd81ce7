"""MongoDB: delivery statuses that arrived before we stored their message's provider id (a provider webhook can
beat our own write after the send call returns). Kept for a day, then MongoDB's TTL monitor drops them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.events.inbound import DeliveryStatusReported

Doc = dict[str, Any]
KEEP_SECONDS = 24 * 3600


class ParkedStatusRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._parked = db["parked_statuses"]

    async def ensure_indexes(self) -> None:
        await self._parked.create_index([("tenant_id", ASCENDING), ("channel_id", ASCENDING),
                                         ("provider_message_id", ASCENDING)])
        await self._parked.create_index("parked_at", expireAfterSeconds=KEEP_SECONDS)

    async def park(self, event: DeliveryStatusReported, at: datetime) -> None:
        """Idempotent: one parked record per message and reported status, however often it is redelivered."""
        key = f"{event.tenant_id}|{event.channel_id}|{event.provider_message_id}|{event.status.value}"
        await self._parked.update_one(
            {"_id": key},
            {"$setOnInsert": {"tenant_id": event.tenant_id, "channel_id": event.channel_id,
                              "provider_message_id": event.provider_message_id, "parked_at": at,
                              "provider_timestamp": event.provider_timestamp,
                              "event": event.model_dump(mode="json")}},
            upsert=True,
        )

    async def parked(self, tenant_id: str, channel_id: str, provider_message_id: str) -> list[Doc]:
        """Oldest provider time first, so the replay follows the order the provider saw."""
        cursor = self._parked.find({"tenant_id": tenant_id, "channel_id": channel_id,
                                    "provider_message_id": provider_message_id}).sort("provider_timestamp", ASCENDING)
        return [doc async for doc in cursor]

    async def with_parked(self, tenant_id: str, channel_id: str, provider_message_ids: list[str]) -> set[str]:
        """Which of these provider ids have parked statuses: one query for a batch of sends (usually none)."""
        cursor = self._parked.find({"tenant_id": tenant_id, "channel_id": channel_id,
                                    "provider_message_id": {"$in": provider_message_ids}}, {"provider_message_id": 1})
        return {doc["provider_message_id"] async for doc in cursor}

    async def remove(self, keys: list[str]) -> None:
        await self._parked.delete_many({"_id": {"$in": keys}})
