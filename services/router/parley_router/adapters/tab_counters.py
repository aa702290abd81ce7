"""MongoDB store of the inbox tab counters (domain/tab_counts.py): one document per bucket holding how many
conversations are in it (`n`), how many changes it took (`seq`, which tells the repair that no change came
in while it recounted) and the latest activity of a conversation that came into it (`arrived`: where the inbox
pages of that bucket start looking)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from parley_router.domain.tab_counts import Bucket, Counted

Doc = dict[str, Any]
BUCKET_FIELDS = ("team_id", "agent", "status", "archived", "blocked", "unanswered")
# what the recount groups by: the conversation's fields a bucket is made of
RECOUNT_GROUP = {"team_id": "$team_id", "agent": "$assignee_agent", "status": "$status",
                 "archived": "$archived", "blocked": "$blocked", "unanswered": "$unanswered"}


def _bucket(tenant_id: str, doc: Doc) -> Bucket:
    status = str(doc["status"])
    return Bucket(tenant_id, doc.get("team_id"), doc.get("agent"), status, bool(doc.get("archived")),
                  bool(doc.get("blocked")), bool(doc.get("unanswered")) and status != "closed")


class TabCounters:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._counters = db["tab_counts"]
        self._conversations = db["conversations"]

    async def ensure_indexes(self) -> None:
        await self._counters.create_index([("tenant_id", ASCENDING)])

    async def apply(self, delta: Mapping[Bucket, int], arrived: Mapping[Bucket, datetime] | None = None) -> None:
        """Add each bucket's change and latest arrival (one bulk write; a bucket seen for the first time is
        created)."""
        arrived = arrived or {}
        if delta or arrived:
            await self._counters.bulk_write([UpdateOne(
                {"_id": bucket.key},
                {"$inc": {"n": delta.get(bucket, 0), "seq": 1},
                 **({"$max": {"arrived": arrived[bucket]}} if bucket in arrived else {}),
                 "$setOnInsert": {"tenant_id": bucket.tenant_id,
                                  **{name: getattr(bucket, name) for name in BUCKET_FIELDS}}},
                upsert=True) for bucket in {*delta, *arrived}], ordered=False)

    async def latest_arrival(self, tenant_id: str, status: str | None) -> datetime | None:
        """The latest activity of a conversation that came into a bucket of the tenant (of that status)."""
        query: Doc = {"tenant_id": tenant_id, **({"status": status} if status else {})}
        found = [doc["arrived"] async for doc in self._counters.find(query, projection={"arrived": 1})
                 if doc.get("arrived")]
        return max(found, default=None)

    async def of_tenant(self, tenant_id: str) -> dict[Bucket, Counted]:
        """Every bucket of the tenant with its count and change number."""
        return {_bucket(tenant_id, doc): Counted(int(doc["n"]), int(doc["seq"]))
                async for doc in self._counters.find({"tenant_id": tenant_id})}

    async def recount(self, tenant_id: str) -> tuple[dict[Bucket, int], dict[Bucket, datetime]]:
        """The truth, from the conversations themselves (one pass over the tenant's conversations): per bucket
        how many, and their latest activity."""
        found: dict[Bucket, int] = {}
        latest: dict[Bucket, datetime] = {}
        pipeline: list[Doc] = [{"$match": {"tenant_id": tenant_id}}, {"$group": {
            "_id": RECOUNT_GROUP, "n": {"$sum": 1}, "arrived": {"$max": "$last_activity_at"}}}]
        async for group in await self._conversations.aggregate(pipeline):
            bucket = _bucket(tenant_id, group["_id"])
            found[bucket] = found.get(bucket, 0) + int(group["n"])  # a closed one's unanswered flag is not kept
            latest[bucket] = max(latest.get(bucket, group["arrived"]), group["arrived"])
        return found, latest

    async def correct(self, bucket: Bucket, seq: int | None, count: int, arrived: datetime | None) -> bool:
        """Set the bucket's count if it took no change since `seq` was read (None: it had no counter then)."""
        fields = {"tenant_id": bucket.tenant_id, **{name: getattr(bucket, name) for name in BUCKET_FIELDS}}
        if seq is None:
            try:
                await self._counters.insert_one({"_id": bucket.key, **fields, "n": count, "seq": 0,
                                                 **({"arrived": arrived} if arrived else {})})
            except DuplicateKeyError:  # a change created it meanwhile: the next repair looks again
                return False
            return True
        result = await self._counters.update_one({"_id": bucket.key, "seq": seq}, {
            "$set": {"n": count}, **({"$max": {"arrived": arrived}} if arrived else {})})
        return result.modified_count == 1 or result.matched_count == 1

    async def tenants(self) -> list[str]:
        """Tenants with conversations (whose counters the repair checks)."""
        return sorted(await self._conversations.distinct("tenant_id"))

    async def counted_tenants(self) -> list[str]:
        """Tenants with counters: every tenant whose conversations were stored through the counters (all but those
        stored before the counters existed, which the repair counts at its first round)."""
        return sorted(await self._counters.distinct("tenant_id"))
