"""MongoDB: message templates per channel (name + language unique)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


class TemplateRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._templates = db["templates"]

    @staticmethod
    def _id(tenant_id: str, channel_id: str, name: str, language: str) -> str:
        return f"{tenant_id}|{channel_id}|{name}|{language}"

    async def ensure_indexes(self) -> None:
        await self._templates.create_index([("tenant_id", ASCENDING), ("channel_id", ASCENDING)])

    async def upsert(self, tenant_id: str, channel_id: str, template: Doc) -> None:
        key = self._id(tenant_id, channel_id, template["name"], template["language"])
        await self._templates.replace_one(
            {"_id": key}, {**template, "_id": key, "tenant_id": tenant_id, "channel_id": channel_id}, upsert=True)

    async def get(self, tenant_id: str, channel_id: str, name: str, language: str) -> Doc | None:
        return await self._templates.find_one({"_id": self._id(tenant_id, channel_id, name, language)})

    async def list(self, tenant_id: str, channel_id: str | None = None, status: str | None = None) -> list[Doc]:
        query: Doc = {"tenant_id": tenant_id}
        if channel_id:
            query["channel_id"] = channel_id
        if status:
            query["status"] = status
        return [doc async for doc in self._templates.find(query).sort("_id", ASCENDING).limit(1000)]

    async def set_status(self, tenant_id: str, channel_id: str, name: str, language: str | None,
                         status: str | None, quality: str | None) -> None:
        """What the provider's template webhook says (every language when it names none); a template the store
        does not have yet arrives with the next sync."""
        query: Doc = {"tenant_id": tenant_id, "channel_id": channel_id, "name": name}
        if language:
            query["language"] = language
        changes = {key: value for key, value in (("status", status), ("quality", quality)) if value is not None}
        if changes:
            await self._templates.update_many(query, {"$set": changes})

    async def has_approved(self, tenant_id: str, channel_id: str) -> bool:
        return await self._templates.find_one(
            {"tenant_id": tenant_id, "channel_id": channel_id, "status": "approved"}) is not None
