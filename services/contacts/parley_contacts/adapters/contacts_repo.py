"""Cards: read, create, optimistic replace, search, merge. Every query filters on the tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from parley_contacts.adapters.collections import BY_ID, Collections, Doc, of_tenant
from parley_contacts.domain.card import Card, Key
from parley_contacts.domain.search import Condition, matches

PREFIX_END = "\U0010ffff"  # sorts after every character a key can hold: [prefix, prefix+END) is "starts with"


WINDOW_HOURS = (1, 8, 64, 512, 4096, 32768)  # then everything older


def activity_windows(after: str | None, now: datetime | None) -> list[str | None]:
    """Lower bounds of the successive activity windows (as activity-key prefixes), newest first; None = all."""
    if now is None and after is None:
        return [None]
    top = int(after.split("|")[0]) if after else int(now.timestamp() * 1_000_000)  # type: ignore[union-attr]
    return [*(f"{max(0, top - hours * 3_600_000_000):017d}" for hours in WINDOW_HOURS), None]


class IdentityTaken(Exception):
    def __init__(self, contact_id: str) -> None:
        super().__init__(contact_id)
        self.contact_id = contact_id


def search_filter(tenant_id: str, condition: Condition | None, *, per_element_ranges: bool = False) -> Doc:
    """One condition on the multikey `search_keys` (the index range). See Collections.per_element_ranges for
    the two forms of a prefix range."""
    query: Doc = {"tenant_id": tenant_id}
    if condition is not None and condition.prefix:
        bounds = {"$gte": condition.key, "$lt": condition.key + PREFIX_END}
        query["search_keys"] = bounds if per_element_ranges else {"$elemMatch": bounds}
    elif condition is not None:
        query["search_keys"] = condition.key
    return query


class ContactsRepository:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def get(self, tenant_id: str, contact_id: str) -> Card | None:
        return of_tenant(await self._c.contacts.find_one({"_id": contact_id}), tenant_id)

    async def merged_into(self, tenant_id: str, contact_id: str) -> str | None:
        doc = of_tenant(await self._c.history.find_one({"_id": contact_id}, {"merged_into": 1, "tenant_id": 1}),
                        tenant_id)
        return str(doc["merged_into"]) if doc else None

    async def owner_of(self, tenant_id: str, channel_id: str, external_user_id: str) -> str | None:
        doc = await self._c.identities.find_one(
            {"tenant_id": tenant_id, "channel_id": channel_id, "external_user_id": external_user_id})
        return str(doc["contact_id"]) if doc else None

    async def create(self, card: Card) -> None:
        """Register the card's identities first (unique per tenant and channel), then insert the card."""
        registered: list[dict[str, Any]] = []
        for identity in card["identities"]:
            try:
                await self._c.identities.insert_one({
                    "tenant_id": card["tenant_id"], "channel_id": identity["channel_id"],
                    "external_user_id": identity["external_user_id"], "contact_id": card["_id"],
                    "created_by_event_id": None, "created_at": card["created_at"]})
            except DuplicateKeyError:
                await self._unregister(card["tenant_id"], card["_id"], registered)
                owner = await self.owner_of(card["tenant_id"], identity["channel_id"], identity["external_user_id"])
                raise IdentityTaken(owner or "") from None
            registered.append(identity)
        await self._c.contacts.insert_one(card)

    async def _unregister(self, tenant_id: str, contact_id: str, identities: list[dict[str, Any]]) -> None:
        for identity in identities:
            await self._c.identities.delete_one({
                "tenant_id": tenant_id, "channel_id": identity["channel_id"],
                "external_user_id": identity["external_user_id"], "contact_id": contact_id})

    async def replace(self, card: Card, expected_version: int) -> bool:
        """Write the edited card unless someone else wrote it since we read it (then the caller retries)."""
        card = {**card, "version": expected_version + 1}
        result = await self._c.contacts.replace_one(
            {"_id": card["_id"], "tenant_id": card["tenant_id"], "version": expected_version}, card, hint=BY_ID)
        return result.matched_count == 1

    async def search(self, tenant_id: str, conditions: list[Condition], limit: int, after: str | None = None,
                     now: datetime | None = None) -> list[Card]:
        """Newest activity first. The first condition is the indexed query; every returned card is checked
        against all conditions here, one key at a time, whatever the server's array semantics.

        The local server sorts every match in memory (MongoDB walks the index instead), so the scan goes back
        in time in growing windows below `now` (or the cursor) and stops as soon as `limit` cards matched.
        It also mis-evaluates a prefix range on the array combined with an activity bound: for that case
        the bounds are applied here instead, in one window."""
        pushdown = not (conditions and conditions[0].prefix and self._c.per_element_ranges)
        broad = not conditions or conditions[0].key.startswith((Key.LABEL, Key.FIELD))  # else a few cards at most
        found: list[Card] = []
        upper = after
        for lower in activity_windows(after, now) if pushdown and broad else [None]:
            found += await self._scan(tenant_id, conditions, limit - len(found), upper, lower, pushdown)
            if len(found) >= limit:
                break
            upper = lower
        return found[:limit]

    async def _scan(self, tenant_id: str, conditions: list[Condition], limit: int, upper: str | None,
                    lower: str | None, pushdown: bool) -> list[Card]:
        query = search_filter(tenant_id, conditions[0] if conditions else None,
                              per_element_ranges=self._c.per_element_ranges)
        bounds = {**({"$lt": upper} if upper else {}), **({"$gte": lower} if lower else {})}
        if pushdown and bounds:
            query["activity_key"] = bounds
        cursor = self._c.contacts.find(query).sort("activity_key", DESCENDING)
        if pushdown and len(conditions) <= 1:
            cursor = cursor.limit(limit)
        found: list[Card] = []
        async for card in cursor:
            if upper is not None and card["activity_key"] >= upper:
                continue
            if matches(card["search_keys"], conditions):
                found.append(card)
                if len(found) >= limit:
                    break
        await cursor.close()
        return found

    async def explain_search(self, tenant_id: str, conditions: list[Condition], limit: int) -> Doc:
        query = search_filter(tenant_id, conditions[0] if conditions else None,
                              per_element_ranges=self._c.per_element_ranges)
        return await self._c.contacts.find(query).sort("activity_key", DESCENDING).limit(limit).explain()

    async def stream(self, tenant_id: str, conditions: list[Condition], now: datetime | None = None,
                     page: int = 500) -> AsyncIterator[Card]:
        """Every matching card, newest activity first, fetched in pages so memory stays bounded."""
        after: str | None = None
        while True:
            cards = await self.search(tenant_id, conditions, page, after, now)
            for card in cards:
                yield card
            if len(cards) < page:
                return
            after = cards[-1]["activity_key"]

    async def merge(self, merged: Card, expected_version: int, secondary: Card, by: str, now: datetime) -> bool:
        """Store the merged card, keep the other as history, point its identities and comments here.

        One transaction, so a merge is never half-done."""
        async with self._c.db.client.start_session() as session, await session.start_transaction():
            result = await self._c.contacts.replace_one(
                {"_id": merged["_id"], "tenant_id": merged["tenant_id"], "version": expected_version},
                {**merged, "version": expected_version + 1}, session=session, hint=BY_ID)
            if result.matched_count != 1:
                await session.abort_transaction()
                return False
            removed = await self._c.contacts.delete_one(
                {"_id": secondary["_id"], "tenant_id": secondary["tenant_id"], "version": secondary["version"]},
                session=session, hint=BY_ID)
            if removed.deleted_count != 1:
                await session.abort_transaction()
                return False
            history = {**secondary, "merged_into": merged["_id"], "merged_at": now, "merged_by": by}
            await self._c.history.replace_one({"_id": secondary["_id"]}, history, upsert=True, session=session)
            await self._c.identities.update_many(
                {"tenant_id": secondary["tenant_id"], "contact_id": secondary["_id"]},
                {"$set": {"contact_id": merged["_id"], "created_by_event_id": None}}, session=session)
            await self._c.comments.update_many(
                {"tenant_id": secondary["tenant_id"], "contact_id": secondary["_id"]},
                {"$set": {"contact_id": merged["_id"]}}, session=session)
            await self._c.history.update_many(
                {"tenant_id": secondary["tenant_id"], "merged_into": secondary["_id"]},
                {"$set": {"merged_into": merged["_id"]}}, session=session)
        return True


Docs = list[Doc]  # in the class below, `list` names its method


class CommentsRepository:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def add(self, comment: Doc) -> None:
        await self._c.comments.insert_one(comment)

    async def get(self, tenant_id: str, contact_id: str, comment_id: str) -> Doc | None:
        doc = of_tenant(await self._c.comments.find_one({"_id": comment_id}), tenant_id)
        return doc if doc and doc.get("contact_id") == contact_id else None

    async def list(self, tenant_id: str, contact_id: str, limit: int = 200) -> list[Doc]:
        cursor = self._c.comments.find({"tenant_id": tenant_id, "contact_id": contact_id})
        return [doc async for doc in cursor.sort("created_at", ASCENDING).limit(limit)]

    async def mentioning(self, tenant_id: str, login: str, limit: int) -> Docs:
        """The comments that mention `login`, newest first."""
        cursor = self._c.comments.find({"tenant_id": tenant_id, "mentions": login})
        return [doc async for doc in cursor.sort("created_at", DESCENDING).limit(limit)]


class VocabularyRepository:
    """Per tenant: every label and custom field name ever used, for the dropdowns (field names keep a type)."""

    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def field_type(self, tenant_id: str, name: str) -> str | None:
        doc = await self._c.vocabulary.find_one({"tenant_id": tenant_id, "kind": "field", "name": name})
        return str(doc["type"]) if doc else None

    async def remember(self, tenant_id: str, kind: str, names: list[str], field_type: str | None = None) -> None:
        for name in names:
            try:
                await self._c.vocabulary.update_one(
                    {"tenant_id": tenant_id, "kind": kind, "name": name},
                    {"$setOnInsert": {"type": field_type}}, upsert=True)
            except DuplicateKeyError:
                continue  # a concurrent request remembered it first

    async def names(self, tenant_id: str, kind: str) -> list[Doc]:
        cursor = self._c.vocabulary.find({"tenant_id": tenant_id, "kind": kind}, {"_id": 0, "name": 1, "type": 1})
        return [doc async for doc in cursor.sort("name", ASCENDING).limit(1000)]
