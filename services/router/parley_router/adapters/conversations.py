"""MongoDB repository of conversations: one open conversation per conversation key, optimistic versions."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from parley_common.ids import ConversationKey
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status

Doc = dict[str, Any]


def to_doc(conv: Conversation) -> Doc:
    doc = asdict(conv)
    doc["_id"] = doc.pop("id")
    doc["status"] = conv.status.value
    doc["assignee"] = {"kind": conv.assignee.kind.value, "id": conv.assignee.id} if conv.assignee else None
    doc["assignee_agent"] = conv.agent  # indexed lookups of an agent's conversations
    doc["labels"] = list(conv.labels)
    return doc


def from_doc(doc: Doc) -> Conversation:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "assignee_agent")}
    assignee = fields.get("assignee")
    fields.update(
        id=doc["_id"], status=Status(doc["status"]), labels=tuple(doc.get("labels", ())),
        assignee=Assignee(AssigneeKind(assignee["kind"]), assignee["id"]) if assignee else None,
    )
    return Conversation(**fields)


class StaleVersion(Exception):
    """Someone saved the conversation since it was read; read again and retry."""


class ConversationRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._conversations = db["conversations"]
        self._open = db["open_conversations"]  # _id = conversation key: at most one open conversation

    async def ensure_indexes(self) -> None:
        await self._conversations.create_index([("tenant_id", ASCENDING), ("status", ASCENDING),
                                                ("priority", DESCENDING), ("waiting_since", ASCENDING)])
        await self._conversations.create_index([("tenant_id", ASCENDING), ("last_activity_at", DESCENDING)])
        await self._conversations.create_index([("tenant_id", ASCENDING), ("channel_id", ASCENDING),
                                                ("external_user_id", ASCENDING), ("opened_at", DESCENDING)])
        await self._conversations.create_index([("status", ASCENDING), ("offer_expires_at", ASCENDING)])
        await self._conversations.create_index([("tenant_id", ASCENDING), ("assignee_agent", ASCENDING)])

    async def get(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        doc = await self._conversations.find_one({"_id": conversation_id})  # by key alone: the fastest lookup
        return from_doc(doc) if doc and doc["tenant_id"] == tenant_id else None

    async def open_for(self, key: ConversationKey) -> Conversation | None:
        pointer = await self._open.find_one({"_id": str(key)})
        conv = await self.get(key.tenant_id, pointer["conversation_id"]) if pointer else None
        if pointer and (conv is None or not conv.is_open):  # a reopen that lost its race left it behind
            await self._open.delete_one({"_id": str(key), "conversation_id": pointer["conversation_id"]})
            return None
        return conv

    async def last_agent_for(self, key: ConversationKey) -> str | None:
        doc = await self._conversations.find_one(
            {"tenant_id": key.tenant_id, "channel_id": key.channel_id, "external_user_id": key.external_user_id,
             "assignee_agent": {"$ne": None}},
            sort=[("opened_at", DESCENDING)], projection={"assignee_agent": 1})
        return doc["assignee_agent"] if doc else None

    async def create(self, conv: Conversation) -> Conversation:
        """Insert a new open conversation; if another one won the race for this key, return that one."""
        key = ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id)
        try:
            await self._open.insert_one({"_id": str(key), "conversation_id": conv.id, "tenant_id": conv.tenant_id})
        except DuplicateKeyError:
            existing = await self.open_for(key)
            if existing is not None:
                return existing
            raise
        await self._conversations.replace_one({"_id": conv.id}, to_doc(conv), upsert=True)
        return conv

    async def claim_open(self, conv: Conversation) -> bool:
        """Make `conv` its key's open conversation again (reopen); False when another one is open."""
        key = str(ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id))
        try:
            await self._open.insert_one({"_id": key, "conversation_id": conv.id, "tenant_id": conv.tenant_id})
        except DuplicateKeyError:
            pointer = await self._open.find_one({"_id": key})
            return pointer is not None and pointer["conversation_id"] == conv.id
        return True

    async def save(self, conv: Conversation) -> Conversation:
        """Store `conv` if nobody saved since it was read (same version); returns it with the next version."""
        saved = replace(conv, version=conv.version + 1)
        result = await self._conversations.replace_one({"_id": conv.id, "version": conv.version}, to_doc(saved))
        if result.matched_count == 0:
            raise StaleVersion(conv.id)
        key = str(ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id))
        if saved.status is Status.CLOSED:
            await self._open.delete_one({"_id": key, "conversation_id": conv.id})
        return saved

    async def queued(self, tenant_id: str, limit: int) -> list[Conversation]:
        cursor = self._conversations.find({"tenant_id": tenant_id, "status": Status.QUEUED.value,
                                           "blocked": False},
                                          sort=[("priority", DESCENDING), ("waiting_since", ASCENDING)],
                                          limit=limit)
        return [from_doc(doc) async for doc in cursor]

    async def due(self, now: datetime, limit: int = 500) -> list[Conversation]:
        """Offers past their timeout and snoozes that ran out, over all tenants."""
        cursor = self._conversations.find({"$or": [
            {"status": Status.ASSIGNED.value, "offer_expires_at": {"$lte": now}},
            {"status": Status.SNOOZED.value, "snoozed_until": {"$lte": now}},
        ]}, limit=limit)
        return [from_doc(doc) async for doc in cursor]

    async def find(self, query: Doc, sort: list[tuple[str, int]], limit: int) -> list[Conversation]:
        return [from_doc(doc) async for doc in self._conversations.find(query, sort=sort, limit=limit)]

    async def count(self, query: Doc) -> int:
        return await self._conversations.count_documents(query)

    async def active_of_agent(self, tenant_id: str, login: str) -> list[Conversation]:
        return await self.find({"tenant_id": tenant_id, "assignee_agent": login,
                                "status": {"$ne": Status.CLOSED.value}}, [("_id", ASCENDING)], 10_000)
