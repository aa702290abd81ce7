"""MongoDB: saved replies (snippets) per tenant; the name is unique in the tenant (unique index)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class DuplicateName(Exception):
    """Another saved reply of the tenant already has this name."""


class SavedReplyRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._replies = db["saved_replies"]

    async def ensure_indexes(self) -> None:
        await self._replies.create_index([("tenant_id", ASCENDING), ("name", ASCENDING)], unique=True)

    async def create(self, doc: Doc) -> None:
        try:
            await self._replies.insert_one(doc)
        except DuplicateKeyError:
            raise DuplicateName(doc["name"]) from None

    async def get(self, tenant_id: str, reply_id: str) -> Doc | None:
        return await self._replies.find_one({"_id": reply_id, "tenant_id": tenant_id})

    async def list(self, tenant_id: str, channel_type: str | None = None) -> list[Doc]:
        query: Doc = {"tenant_id": tenant_id}
        if channel_type:  # those for this channel type, and those for every channel (no types given)
            query["$or"] = [{"channel_types": channel_type}, {"channel_types": []}]
        return [doc async for doc in self._replies.find(query).sort("name", ASCENDING).limit(1000)]

    async def replace(self, tenant_id: str, reply_id: str, fields: Doc) -> Doc | None:
        try:
            return await self._replies.find_one_and_update(
                {"_id": reply_id, "tenant_id": tenant_id}, {"$set": fields}, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            raise DuplicateName(fields["name"]) from None

    async def delete(self, tenant_id: str, reply_id: str) -> bool:
        result = await self._replies.delete_one({"_id": reply_id, "tenant_id": tenant_id})
        return result.deleted_count == 1
