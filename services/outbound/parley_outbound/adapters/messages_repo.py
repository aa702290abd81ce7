"""MongoDB: outbound messages, their state, and idempotency claims. All queries on these collections live here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from parley_outbound.domain.status import State

Doc = dict[str, Any]


class MessageRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._messages = db["outbound_messages"]
        self._claims = db["idempotency_claims"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("tenant_id", ASCENDING), ("provider_message_id", ASCENDING)])
        await self._messages.create_index([("state", ASCENDING), ("updated_at", ASCENDING)])

    async def claim(self, tenant_id: str, key: str, message_id: str) -> str:
        """Record that `key` means `message_id`; returns the message id the key already meant, if any."""
        try:
            await self._claims.insert_one({"_id": f"{tenant_id}|{key}", "message_id": message_id})
        except DuplicateKeyError:
            existing = await self._claims.find_one({"_id": f"{tenant_id}|{key}"})
            return str(existing["message_id"]) if existing else message_id
        return message_id

    async def insert(self, doc: Doc) -> bool:
        """False when a message with this id exists already (a redelivered command)."""
        try:
            await self._messages.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, tenant_id: str, message_id: str) -> Doc | None:
        return await self._messages.find_one({"_id": message_id, "tenant_id": tenant_id})

    async def by_provider_id(self, tenant_id: str, channel_id: str, provider_message_id: str) -> Doc | None:
        return await self._messages.find_one(
            {"tenant_id": tenant_id, "provider_message_id": provider_message_id, "channel_id": channel_id})

    async def transition(self, tenant_id: str, message_id: str, expected: State, new: State, at: datetime,
                         **fields: Any) -> bool:
        """Compare-and-set: move from `expected` to `new` only if nobody moved it meanwhile."""
        result = await self._messages.update_one(
            {"_id": message_id, "tenant_id": tenant_id, "state": expected.value},
            {"$set": {"state": new.value, "updated_at": at, f"history.{new.value}": at, **fields}},
        )
        return result.modified_count == 1

    async def stuck_sending(self, older_than: datetime, limit: int = 500) -> list[Doc]:
        """Messages whose provider call may have happened but whose outcome was never recorded."""
        cursor = self._messages.find({"state": State.SENDING.value, "updated_at": {"$lt": older_than}}).limit(limit)
        return [doc async for doc in cursor]
