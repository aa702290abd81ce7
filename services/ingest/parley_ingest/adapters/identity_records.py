"""Ingest's own record of which key each customer identifier stands for (MongoDB, collection `identities`):
the source of truth behind the Redis cache (adapters/identities.py). Every query on it lives here.

A document per identifier: `_id` `<tenant>:<channel>:<sha256 of kind:value>`, `tenant_id`, `channel_id` and
`rank` (the key with its birth, domain/identities.py). The `_id` index is the unique index that makes "the first
writer of a new identifier wins" race-free: a concurrent insert of the same identifier fails as a duplicate and
its writer reads again. A link to an older key lowers `rank` with `$min`, which never raises it, so writers that
link in any order end on the same oldest key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from parley_common.mongo import DUPLICATE_KEY
from parley_ingest.domain.identities import Scoped

COLLECTION = "identities"


def _id(scoped: Scoped) -> str:
    tenant_id, channel_id, identifier = scoped
    # provider ids are hashed, as in the cache: bounded, and no phone number stored in the clear as an id
    return _hashed_id(tenant_id, channel_id, hashlib.sha256(identifier.encode()).hexdigest())


def _hashed_id(tenant_id: str, channel_id: str, identifier_sha256: str) -> str:
    # One string (tenant and channel ids hold no ":"): the local database scans the whole collection for an `$in`
    # of sub-documents (310 ms per find at 5,000 identities, measured), and answers one of strings from the index.
    return f"{tenant_id}:{channel_id}:{identifier_sha256}"


def _new(tenant_id: str, channel_id: str, an_id: str, rank: str) -> dict[str, str]:
    # tenant and channel beside the id: what an operator queries when a tenant or channel goes
    return {"_id": an_id, "tenant_id": tenant_id, "channel_id": channel_id, "rank": rank}


class IdentityRecords:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._identities = db[COLLECTION]

    async def ranks(self, identifiers: Iterable[Scoped]) -> dict[Scoped, str]:
        """The stored rank of each of `identifiers` that has one (one query)."""
        wanted = {_id(scoped): scoped for scoped in identifiers}
        if not wanted:
            return {}
        found = self._identities.find({"_id": {"$in": list(wanted)}}, {"rank": 1})
        return {wanted[doc["_id"]]: doc["rank"] async for doc in found}

    async def record(self, new: dict[Scoped, str], lowered: dict[Scoped, str]) -> bool:
        """Insert the `new` identifiers and lower the `lowered` ones, in one unordered write. False when another
        writer got there first (an identifier inserted meanwhile, or already lowered as far or further): the
        caller reads again and decides anew."""
        writes: list[InsertOne[dict[str, Any]] | UpdateOne] = [
            InsertOne(_new(scoped[0], scoped[1], _id(scoped), rank)) for scoped, rank in new.items()]
        writes += [UpdateOne({"_id": _id(scoped)}, {"$min": {"rank": rank}}) for scoped, rank in lowered.items()]
        if not writes:
            return True
        try:
            result = await self._identities.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", ())):
                raise
            return False
        return result.modified_count == len(lowered)

    async def adopt(self, tenant_id: str, channel_id: str, ranks: dict[str, str]) -> None:
        """Record identifiers known only by their sha256 (`ranks`: sha256 → rank), each lowered to the given rank
        or inserted with it (parley_ingest.migrate_identities): idempotent, and the older key wins as always."""
        if ranks:
            await self._identities.bulk_write(
                [UpdateOne({"_id": _hashed_id(tenant_id, channel_id, sha)},
                           {"$min": {"rank": rank}, "$setOnInsert": {"tenant_id": tenant_id, "channel_id": channel_id}},
                           upsert=True) for sha, rank in ranks.items()], ordered=False)
