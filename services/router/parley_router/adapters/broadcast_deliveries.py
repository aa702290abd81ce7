"""MongoDB: the last broadcast message that left for each customer (from parley.outbound.messages.v1, which
carries the broadcast id), kept REPLY_WINDOW. A broadcast opens no conversation — 100,000 of them must not fill
the inbox — so a customer who writes back within that time opens one that shows the broadcast it answered."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.batching import TickBatcher
from parley_common.ids import ConversationKey

REPLY_WINDOW = timedelta(days=7)


class BroadcastDeliveries:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._deliveries = db["broadcast_deliveries"]
        # the new conversations of a consumer batch ask in one query (parley_common.batching)
        self._lookups: TickBatcher[str, dict[str, Any] | None] = TickBatcher(self._deliveries_to)

    async def ensure_indexes(self) -> None:
        await self._deliveries.create_index([("at", ASCENDING)], expireAfterSeconds=int(REPLY_WINDOW.total_seconds()))

    async def record(self, key: ConversationKey, broadcast_id: str, message_id: str, at: datetime) -> None:
        await self._deliveries.update_one({"_id": str(key), "at": {"$not": {"$gt": at}}},
                                          {"$set": {"broadcast_id": broadcast_id, "message_id": message_id, "at": at}},
                                          upsert=True)

    async def answered(self, key: ConversationKey, at: datetime) -> str | None:
        """The broadcast this customer's message at `at` answers, if one reached them within the window."""
        doc = await self._lookups.submit(str(key))
        if doc is None or not at - REPLY_WINDOW <= doc["at"] <= at + timedelta(minutes=5):
            return None
        return str(doc["broadcast_id"])

    async def _deliveries_to(self, keys: list[str]) -> list[dict[str, Any] | None]:
        found = {doc["_id"]: doc async for doc in self._deliveries.find({"_id": {"$in": keys}})}
        return [found.get(key) for key in keys]
