"""MongoDB through PyMongo's async API (the maintained successor of motor)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import BulkWriteError

from parley_common import mongo_seams, round_trips
from parley_common.metrics import MongoCommandTimer

DUPLICATE_KEY = 11000
M = TypeVar("M", bound=BaseModel)


# A write is acknowledged once a majority of the replica set has it in its journal. Consumers commit a record's
# offset once its write is acknowledged, and HTTP answers "stored" on it: an acknowledged write that a crash of the
# database then loses is a message lost for good (the record is never delivered again). MongoDB's implicit default
# is the same on a plain replica set, but a cluster default (setDefaultRWConcern) or an arbiter can lower it to
# w:1 unjournaled; and SecantusDB as shipped loses the last ~15 ms of acknowledged writes without `j` on a kill -9
# (ours writes every commit through: docs/architecture.md, "What the local servers keep on a kill -9"). Explicit,
# it holds anywhere.
DURABLE_WRITES: dict[str, Any] = {"w": "majority", "journal": True}


def mongo_client(uri: str, app_name: str, service: str = "unknown", **options: Any) -> AsyncMongoClient[dict[str, Any]]:
    """Timezone-aware datetimes and standard UUIDs, so what we read equals what we wrote; writes acknowledged
    only once journaled by a majority (DURABLE_WRITES); every command timed under `service`
    (parley_common.metrics); `options` are TLS and credentials (parley_common.connections.mongo_client_options).
    The driver's connection awaits each reply directly (parley_common.mongo_seams)."""
    mongo_seams.replies_awaited_directly()
    extra = round_trips.mongo_options()
    listeners = [MongoCommandTimer(service), *extra.pop("event_listeners", [])]
    settings = {"serverSelectionTimeoutMS": 5000, **DURABLE_WRITES, **options, **extra}
    return AsyncMongoClient(uri, tz_aware=True, uuidRepresentation="standard", appname=app_name,
                            event_listeners=listeners, **settings)


async def insert_new(collection: AsyncCollection[dict[str, Any]], docs: Sequence[dict[str, Any]]) -> set[int]:
    """Insert `docs` in one unordered write; answers the indexes of those already there (a duplicate key), which
    the caller treats as it must. Any other write error raises."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", ())
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


async def inserted_of(collection: AsyncCollection[dict[str, Any]], docs: Mapping[int, dict[str, Any]]) -> set[int]:
    """`docs` by their write's place in a batch, inserted in one unordered write (`insert_new`): the places of
    those inserted — a batch's creations tried as inserts, the others (there already) left to the batch's own
    writes. No command when there is none."""
    if not docs:
        return set()
    stored_before = await insert_new(collection, list(docs.values()))
    return {place for n, place in enumerate(docs) if n not in stored_before}


def read_stored(model: type[M], stored: Mapping[str, Any]) -> M:
    """A model rebuilt from a document (or part of one) this service stored, as a tolerant reader, like
    `Topic.parse` on Kafka: fields this version does not know — written by a newer release, read again after a
    rollback — are ignored at every depth, the ones it knows validated as strictly as ever. The models stay strict
    for what they build and accept from outside."""
    return model.model_validate(stored, extra="ignore")


async def in_pages(cursor: AsyncCursor[dict[str, Any]] | AsyncCommandCursor[dict[str, Any]],
                   page: int) -> AsyncGenerator[list[dict[str, Any]]]:
    """A cursor's documents `page` at a time, the cursor closed however the reader stops."""
    docs: list[dict[str, Any]] = []
    try:
        async for doc in cursor:
            docs.append(doc)
            if len(docs) == page:
                yield docs
                docs = []
        if docs:
            yield docs
    finally:
        await cursor.close()
