"""MongoDB: outbound messages, their state, and idempotency claims. All queries on these collections live here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from parley_common.ids import ConversationKey
from parley_common.mongo import DUPLICATE_KEY, in_pages
from parley_outbound.domain.broadcasts import MessageCount
from parley_outbound.domain.status import State

Doc = dict[str, Any]


@dataclass(frozen=True)
class Move:
    """A compare-and-set state change of one message, for a bulk write."""

    tenant_id: str
    message_id: str
    expected: State
    new: State
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    inserted: set[str]  # ids of the new documents stored (a duplicate id was not)
    moved: set[str]  # ids of the messages this write moved (another writer moved the rest first)


class MessageRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._messages = db["outbound_messages"]
        self._claims = db["idempotency_claims"]

    async def ensure_indexes(self) -> None:
        await self._messages.create_index([("tenant_id", ASCENDING), ("provider_message_id", ASCENDING)])
        await self._messages.create_index([("state", ASCENDING), ("updated_at", ASCENDING)])
        await self._messages.create_index([("broadcast_id", ASCENDING), ("state", ASCENDING), ("reason", ASCENDING)],
                                          partialFilterExpression={"broadcast_id": {"$exists": True}})
        await self._messages.create_index([("created_at", ASCENDING)],  # recent broadcast messages: a rebuild's
                                          name="broadcast_created_at",  # (latest_broadcast_messages)
                                          partialFilterExpression={"broadcast_id": {"$exists": True}})

    async def claim(self, tenant_id: str, key: str, message_id: str) -> str:
        """Record that `key` means `message_id`; returns the message id the key already meant, if any."""
        try:
            await self._claims.insert_one({"_id": f"{tenant_id}|{key}", "message_id": message_id})
        except DuplicateKeyError:
            existing = await self._claims.find_one({"_id": f"{tenant_id}|{key}"})
            return str(existing["message_id"]) if existing else message_id
        return message_id

    async def release(self, tenant_id: str, key: str, message_id: str) -> None:
        """Forget that `key` means `message_id` (it was answered retryable, never stored)."""
        await self._claims.delete_one({"_id": f"{tenant_id}|{key}", "message_id": message_id})

    async def insert(self, doc: Doc) -> bool:
        """False when a message with this id exists already (a redelivered command)."""
        try:
            await self._messages.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def get_many(self, message_ids: list[str]) -> dict[str, Doc]:
        """One query for a batch (no `_id` hint: with `$in` it makes the local server walk the whole index)."""
        if not message_ids:
            return {}
        return {doc["_id"]: doc async for doc in self._messages.find({"_id": {"$in": message_ids}})}

    async def write_batch(self, inserts: list[Doc], moves: list[Move]) -> Written:
        """New documents and compare-and-set moves in ONE bulk write. A bulk result only counts the updates, so
        every move also stamps a token for this write: when fewer matched than asked, the token tells which."""
        if not inserts and not moves:
            return Written(set(), set())
        token = uuid.uuid4().hex
        operations: list[InsertOne[Doc] | UpdateOne] = [InsertOne(doc) for doc in inserts]
        operations += [UpdateOne({"_id": move.message_id, "tenant_id": move.tenant_id, "state": move.expected.value},
                                 {"$set": {**_move_fields(move), "write_token": token}}) for move in moves]
        result: dict[str, Any]
        try:
            result = dict((await self._messages.bulk_write(operations, ordered=False)).bulk_api_result)
        except BulkWriteError as error:
            if any(item["code"] != DUPLICATE_KEY for item in error.details["writeErrors"]):
                raise
            result = dict(error.details)
        failed = {item["index"] for item in result.get("writeErrors", [])}
        inserted = {doc["_id"] for index, doc in enumerate(inserts) if index not in failed}
        moved = {move.message_id for move in moves}
        if result["nModified"] < len(moves):
            cursor = self._messages.find({"_id": {"$in": list(moved)}, "write_token": token}, {"_id": 1})
            moved = {doc["_id"] async for doc in cursor}
        return Written(inserted, moved)

    async def broadcast_counts(self, broadcast_id: str) -> list[MessageCount]:
        """A broadcast's messages by state and reason, and how many of each the customer answered."""
        pipeline: list[Doc] = [
            {"$match": {"broadcast_id": broadcast_id}},
            {"$group": {"_id": {"state": "$state", "reason": "$reason"}, "n": {"$sum": 1},
                        "replied": {"$sum": {"$cond": [{"$gt": ["$replied_at", None]}, 1, 0]}}}}]
        return [MessageCount(row["_id"]["state"], row["_id"].get("reason"), int(row["n"]), int(row["replied"]))
                async for row in await self._messages.aggregate(pipeline)]

    async def latest_broadcast_messages(self, since: datetime,
                                        page: int) -> AsyncIterator[list[tuple[ConversationKey, str, datetime]]]:
        """Each customer's latest broadcast message created since `since` (its id and when), `page` at a time: what
        the cache's record of which broadcast a reply answers is restored from."""
        pipeline: list[Doc] = [
            {"$match": {"broadcast_id": {"$exists": True}, "created_at": {"$gte": since}}},
            {"$sort": {"created_at": ASCENDING}},
            {"$group": {"_id": {"tenant_id": "$tenant_id", "channel_id": "$channel_id",
                                "external_user_id": "$external_user_id"},
                        "message_id": {"$last": "$_id"}, "at": {"$last": "$created_at"}}}]
        cursor = await self._messages.aggregate(pipeline, allowDiskUse=True, batchSize=page)
        async for docs in in_pages(cursor, page):
            yield [(ConversationKey(doc["_id"]["tenant_id"], doc["_id"]["channel_id"], doc["_id"]["external_user_id"]),
                    str(doc["message_id"]), doc["at"]) for doc in docs]

    async def mark_replied(self, tenant_id: str, message_id: str, at: datetime) -> None:
        """The customer wrote after this broadcast message reached them (the first answer counts)."""
        await self._messages.update_one({"_id": message_id, "tenant_id": tenant_id, "replied_at": None,
                                         "state": {"$in": [State.SENT.value, State.DELIVERED.value,
                                                           State.READ.value]}},
                                        {"$set": {"replied_at": at}})

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
            {"$set": _move_fields(Move(tenant_id, message_id, expected, new, at, fields))},
        )
        return result.modified_count == 1

    async def stuck_sending(self, older_than: datetime, limit: int = 500) -> list[Doc]:
        """Messages whose provider call may have happened but whose outcome was never recorded."""
        cursor = self._messages.find({"state": State.SENDING.value, "updated_at": {"$lt": older_than}}).limit(limit)
        return [doc async for doc in cursor]


def _move_fields(move: Move) -> dict[str, Any]:
    return {"state": move.new.value, "updated_at": move.at, f"history.{move.new.value}": move.at, **move.fields}
