"""MongoDB: each customer's marketing preference (parley.inbound.preferences.v1), outbound's durable copy of what
its Redis window projection holds: the cache restores opt-outs from it after a restart (handlers/
projection_rebuild.py) — all of them, where the topic keeps 30 days. The latest stop and the latest resume are kept
apart (`$max` each), so a redelivered or late event changes nothing and the later of the two decides (a stop on a
tie: the safe side)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.ids import ConversationKey
from parley_common.mongo import in_pages

Doc = dict[str, Any]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MarketingPreference:
    key: ConversationKey
    opted_out: bool
    at: datetime


class MarketingPreferenceRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._preferences = db["marketing_preferences"]

    async def record(self, key: ConversationKey, opted_out: bool, at: datetime) -> None:
        await self._preferences.update_one(
            {"_id": str(key)},
            {"$max": {"stopped_at" if opted_out else "resumed_at": at},
             "$setOnInsert": {"tenant_id": key.tenant_id, "channel_id": key.channel_id,
                              "external_user_id": key.external_user_id}},
            upsert=True)

    async def every_preference(self, page: int) -> AsyncIterator[list[MarketingPreference]]:
        """Every customer's latest preference, `page` at a time."""
        cursor = self._preferences.find({}, sort=[("_id", ASCENDING)], batch_size=page)
        async for docs in in_pages(cursor, page):
            yield [_preference(doc) for doc in docs]


def _preference(doc: Doc) -> MarketingPreference:
    stopped, resumed = (_aware(doc.get(name)) for name in ("stopped_at", "resumed_at"))
    key = ConversationKey(doc["tenant_id"], doc["channel_id"], doc["external_user_id"])
    return MarketingPreference(key, stopped >= resumed, max(stopped, resumed))


def _aware(value: datetime | None) -> datetime:
    """MongoDB gives naive UTC datetimes back."""
    if value is None:
        return EPOCH
    return value if value.tzinfo else value.replace(tzinfo=UTC)
