"""MongoDB: broadcasts (definition, state, lease, cursor) and their recipients (one document per contact, written
when the broadcast starts, read back in pages). All queries on these collections live here."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from parley_common.mongo import DUPLICATE_KEY, in_pages
from parley_outbound.domain.broadcasts import BroadcastState

Doc = dict[str, Any]
RUNNABLE = [BroadcastState.SCHEDULED.value, BroadcastState.RUNNING.value]


class BroadcastRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._broadcasts = db["broadcasts"]
        self._recipients = db["broadcast_recipients"]

    async def ensure_indexes(self) -> None:
        await self._broadcasts.create_index([("state", ASCENDING), ("start_at", ASCENDING)])
        await self._broadcasts.create_index([("tenant_id", ASCENDING), ("created_at", DESCENDING)])
        await self._recipients.create_index([("broadcast_id", ASCENDING), ("skip_reason", ASCENDING),
                                             ("_id", ASCENDING)])
        await self._recipients.create_index([("broadcast_id", ASCENDING), ("_id", ASCENDING)])

    # --- broadcasts -------------------------------------------------------------------------------------------
    async def create(self, doc: Doc) -> None:
        await self._broadcasts.insert_one(doc)

    async def get(self, tenant_id: str, broadcast_id: str) -> Doc | None:
        return await self._broadcasts.find_one({"_id": broadcast_id, "tenant_id": tenant_id})

    async def newest(self, tenant_id: str, limit: int) -> list[Doc]:
        cursor = self._broadcasts.find({"tenant_id": tenant_id}).sort("created_at", DESCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def change_state(self, tenant_id: str, broadcast_id: str, expected: frozenset[BroadcastState],
                           new: BroadcastState, at: datetime) -> Doc | None:
        """Compare-and-set from one of `expected`; the stored broadcast after, or None when it was not in one."""
        return await self._broadcasts.find_one_and_update(
            {"_id": broadcast_id, "tenant_id": tenant_id, "state": {"$in": [state.value for state in expected]}},
            {"$set": {"state": new.value, "updated_at": at, f"history.{new.value}": at}},
            return_document=ReturnDocument.AFTER)

    async def claim_due(self, owner: str, now: datetime, lease_until: datetime) -> Doc | None:
        """One broadcast to run: scheduled and due, or running without a live lease (its runner died or it was
        resumed). The lease is ours until `lease_until` unless renewed."""
        return await self._broadcasts.find_one_and_update(
            {"state": {"$in": RUNNABLE}, "start_at": {"$lte": now},
             "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]},
            {"$set": {"state": BroadcastState.RUNNING.value, "owner": owner, "lease_until": lease_until,
                      "updated_at": now}},
            sort=[("start_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    async def renew(self, broadcast_id: str, owner: str, lease_until: datetime) -> str | None:
        """Extend our lease; the broadcast's state, or None when the lease is no longer ours."""
        doc = await self._broadcasts.find_one_and_update(
            {"_id": broadcast_id, "owner": owner}, {"$set": {"lease_until": lease_until}},
            projection={"state": 1}, return_document=ReturnDocument.AFTER)
        return None if doc is None else str(doc["state"])

    async def release(self, broadcast_id: str, owner: str, **fields: Any) -> None:
        await self._broadcasts.update_one({"_id": broadcast_id, "owner": owner},
                                          {"$set": {"owner": None, "lease_until": None, **fields}})

    async def resolved(self, broadcast_id: str, owner: str, recipients: int, skipped: dict[str, int]) -> None:
        await self._broadcasts.update_one({"_id": broadcast_id, "owner": owner},
                                          {"$set": {"resolved": True, "recipients": recipients,
                                                    "resolve_skips": skipped}})

    async def advance(self, broadcast_id: str, owner: str, cursor: str) -> None:
        """Every recipient up to `cursor` (by id) went through the send pipeline."""
        await self._broadcasts.update_one({"_id": broadcast_id, "owner": owner, "cursor": {"$not": {"$gte": cursor}}},
                                          {"$set": {"cursor": cursor}})

    async def complete(self, broadcast_id: str, owner: str, at: datetime) -> bool:
        result = await self._broadcasts.update_one(
            {"_id": broadcast_id, "owner": owner, "state": BroadcastState.RUNNING.value},
            {"$set": {"state": BroadcastState.COMPLETED.value, "updated_at": at,
                      f"history.{BroadcastState.COMPLETED.value}": at, "owner": None, "lease_until": None}})
        return result.modified_count == 1

    # --- recipients -------------------------------------------------------------------------------------------
    async def add_recipients(self, docs: list[Doc]) -> None:
        """Idempotent: a resolve resumed after a crash writes the same ids again."""
        if not docs:
            return
        try:
            await self._recipients.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if any(item["code"] != DUPLICATE_KEY for item in error.details["writeErrors"]):
                raise

    async def resolve_counts(self, broadcast_id: str) -> tuple[int, dict[str, int]]:
        """Recipients written, and those skipped at resolve by reason."""
        total = await self._recipients.count_documents({"broadcast_id": broadcast_id})
        pipeline: list[Doc] = [{"$match": {"broadcast_id": broadcast_id, "skip_reason": {"$ne": None}}},
                               {"$group": {"_id": "$skip_reason", "n": {"$sum": 1}}}]
        skipped = {str(row["_id"]): int(row["n"]) async for row in await self._recipients.aggregate(pipeline)}
        return total, skipped

    def to_send(self, broadcast_id: str, after: str | None, page: int) -> AsyncGenerator[list[Doc]]:
        """The recipients to send to (not skipped), by id after `after`, a page at a time from one cursor."""
        query: Doc = {"broadcast_id": broadcast_id, "skip_reason": None}
        if after is not None:
            query["_id"] = {"$gt": after}
        return in_pages(self._recipients.find(query, sort=[("_id", ASCENDING)], batch_size=page), page)

    async def recipients(self, broadcast_id: str, after: str | None, page: int) -> list[Doc]:
        query: Doc = {"broadcast_id": broadcast_id}
        if after is not None:
            query["_id"] = {"$gt": after}
        cursor = self._recipients.find(query).sort("_id", ASCENDING).limit(page)
        return [doc async for doc in cursor]

    def all_recipients(self, broadcast_id: str, page: int) -> AsyncIterator[list[Doc]]:
        return in_pages(self._recipients.find({"broadcast_id": broadcast_id}, sort=[("_id", ASCENDING)],
                                              batch_size=page), page)
