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

import pymongo
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from parley_common.batching import TickBatcher
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


Recording = tuple[dict[Scoped, str], dict[Scoped, str]]
"""What one webhook records: identifiers to insert (`new`) and identifiers to lower (`lowered`), each → rank."""


class IdentityRecords:
    """The webhooks in flight share one `$in` find and one unordered bulk write per event-loop turn
    (parley_common.batching); each still learns its own outcome. `timeout_seconds` bounds each shared call."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], timeout_seconds: float | None = None) -> None:
        self._identities = db[COLLECTION]
        self._timeout = timeout_seconds
        self._lookups: TickBatcher[list[str], dict[str, str]] = TickBatcher(self._find_many)
        self._recordings: TickBatcher[Recording, bool] = TickBatcher(self._record_many)

    async def ranks(self, identifiers: Iterable[Scoped]) -> dict[Scoped, str]:
        """The stored rank of each of `identifiers` that has one."""
        wanted = {_id(scoped): scoped for scoped in identifiers}
        if not wanted:
            return {}
        found = await self._lookups.submit(list(wanted))
        return {wanted[an_id]: a_rank for an_id, a_rank in found.items()}

    async def _find_many(self, lookups: list[list[str]]) -> list[dict[str, str]]:
        ids = list({an_id for wanted in lookups for an_id in wanted})
        with pymongo.timeout(self._timeout):
            # every match in the first batch: no getMore round trip (a document is ~150 bytes)
            found = {doc["_id"]: doc["rank"] async for doc in self._identities.find(
                {"_id": {"$in": ids}}, {"rank": 1}, batch_size=len(ids))}
        return [{an_id: found[an_id] for an_id in wanted if an_id in found} for wanted in lookups]

    async def record(self, new: dict[Scoped, str], lowered: dict[Scoped, str]) -> bool:
        """Insert the `new` identifiers and lower the `lowered` ones. False when another writer got there first
        (an identifier inserted meanwhile, or already lowered as far or further): the caller reads again and
        decides anew."""
        if not new and not lowered:
            return True
        return await self._recordings.submit((new, lowered))

    async def _record_many(self, recordings: list[Recording]) -> list[bool]:
        """One unordered write for every recording. A duplicate key fails only the recording whose identifier it
        was (a write error names its write's index). A bulk result counts modifications, not whose: when fewer
        ranks were lowered than asked (a link raced by another writer: rare), each recording that lowered any
        reads again — reading again is always safe, a recording already made is then nothing to write."""
        writes: list[InsertOne[dict[str, Any]] | UpdateOne] = []
        owners: list[int] = []  # write index → recording index
        for owner, (new, lowered) in enumerate(recordings):
            writes += [InsertOne(_new(tenant, channel, _id((tenant, channel, identifier)), a_rank))
                       for (tenant, channel, identifier), a_rank in new.items()]
            writes += [UpdateOne({"_id": _id(scoped)}, {"$min": {"rank": a_rank}})
                       for scoped, a_rank in lowered.items()]
            owners += [owner] * (len(new) + len(lowered))
        try:
            with pymongo.timeout(self._timeout):
                modified = (await self._identities.bulk_write(writes, ordered=False)).modified_count
            collided: set[int] = set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", ())
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            collided, modified = {owners[error["index"]] for error in errors}, exc.details.get("nModified", 0)
        all_lowered = modified == sum(len(lowered) for _, lowered in recordings)
        return [owner not in collided and (all_lowered or not lowered)
                for owner, (_, lowered) in enumerate(recordings)]

    async def adopt(self, tenant_id: str, channel_id: str, ranks: dict[str, str]) -> None:
        """Record identifiers known only by their sha256 (`ranks`: sha256 → rank), each lowered to the given rank
        or inserted with it (parley_ingest.migrate_identities): idempotent, and the older key wins as always."""
        if ranks:
            await self._identities.bulk_write(
                [UpdateOne({"_id": _hashed_id(tenant_id, channel_id, sha)},
                           {"$min": {"rank": rank}, "$setOnInsert": {"tenant_id": tenant_id, "channel_id": channel_id}},
                           upsert=True) for sha, rank in ranks.items()], ordered=False)
