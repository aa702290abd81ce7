"""MongoDB through PyMongo's async API (the maintained successor of motor)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def mongo_client(uri: str, app_name: str) -> AsyncMongoClient[dict[str, Any]]:
    """Timezone-aware datetimes and standard UUIDs, so what we read equals what we wrote."""
    return AsyncMongoClient(uri, tz_aware=True, uuidRepresentation="standard", appname=app_name,
                            serverSelectionTimeoutMS=5000)


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


async def find_each(collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], field: str,
                    values: Iterable[Any], projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The documents matching `query` whose `field` equals one of `values`, asked as one equality query per value,
    all at once (a document matching several values comes once per value). The local database (SecantusDB)
    answers `$in` on any field but `_id` by scanning the whole collection (~35 µs a document, growing with the
    data), an equality from its index; MongoDB answers both from the index."""
    async def matching(value: Any) -> list[dict[str, Any]]:
        return [doc async for doc in collection.find({**query, field: value}, projection=projection)]

    found = await asyncio.gather(*(matching(value) for value in dict.fromkeys(values)))
    return [doc for docs in found for doc in docs]
