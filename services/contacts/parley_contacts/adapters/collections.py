"""The service's collections and the indexes it creates at start (idempotent: create_index is a no-op when
the index exists)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]
SEARCH_INDEX = "tenant_search_keys"
ACTIVITY_INDEX = "tenant_activity"
IDENTITY_INDEX = "tenant_channel_external_user_unique"
# Writes by _id also filter on the tenant (isolation). MongoDB answers those from the _id index on its own;
# SecantusDB 0.7 plans `{_id, tenant_id}` as a collection scan unless told, so every by-id write names it.
BY_ID = [("_id", ASCENDING)]


def of_tenant(doc: Doc | None, tenant_id: str) -> Doc | None:
    """A document read by `_id` alone, kept only when it is this tenant's (isolation). Reads ask by `_id` alone:
    SecantusDB walks a hinted index whole (213 ms per read with 20,000 contacts) and scans the collection for an
    `_id` `$in` with another field (1.5 s per batch), but answers `_id` alone from the index (~0.6 ms)."""
    return doc if doc is not None and doc.get("tenant_id") == tenant_id else None


class Collections:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.contacts: AsyncCollection[Doc] = db["contacts"]
        # The identity registry: (tenant, channel, external user id) -> contact, unique. Concurrent first
        # messages of one customer race on this index, so exactly one contact is created.
        self.identities: AsyncCollection[Doc] = db["identities"]
        self.history: AsyncCollection[Doc] = db["merged_contacts"]
        self.comments: AsyncCollection[Doc] = db["comments"]
        self.vocabulary: AsyncCollection[Doc] = db["vocabulary"]
        # MongoDB matches a range on an array when *different* elements satisfy each bound, so prefix ranges
        # need $elemMatch there (which it answers from the index with tight bounds). The local SecantusDB
        # evaluates a plain range per element already, but plans $elemMatch as a collection scan: there the
        # plain form is both correct and indexed. Decided once, from buildInfo, at start.
        self.per_element_ranges = False

    async def ensure_indexes(self) -> None:
        build = await self.db.client.admin.command("buildInfo")
        self.per_element_ranges = "secantusVersion" in build
        await self.contacts.create_indexes([
            # activity_key after the key: an exact-key search walks the index already sorted (MongoDB)
            IndexModel([("tenant_id", ASCENDING), ("search_keys", ASCENDING), ("activity_key", DESCENDING)],
                       name=SEARCH_INDEX),
            IndexModel([("tenant_id", ASCENDING), ("activity_key", DESCENDING)], name=ACTIVITY_INDEX),
        ])
        await self.identities.create_indexes([
            IndexModel([("tenant_id", ASCENDING), ("channel_id", ASCENDING), ("external_user_id", ASCENDING)],
                       name=IDENTITY_INDEX, unique=True),
            IndexModel([("tenant_id", ASCENDING), ("contact_id", ASCENDING)], name="tenant_contact"),
        ])
        await self.history.create_index([("tenant_id", ASCENDING), ("merged_into", ASCENDING)], name="tenant_into")
        await self.comments.create_index(
            [("tenant_id", ASCENDING), ("contact_id", ASCENDING), ("created_at", ASCENDING)], name="tenant_contact")
        await self.comments.create_index(  # an agent's mentions, newest first
            [("tenant_id", ASCENDING), ("mentions", ASCENDING), ("created_at", DESCENDING)], name="tenant_mentions")
        await self.vocabulary.create_index(
            [("tenant_id", ASCENDING), ("kind", ASCENDING), ("name", ASCENDING)], name="tenant_kind_name", unique=True)
