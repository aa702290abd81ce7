"""MongoDB: outbound's own projection of the tenant's contacts (parley.contacts.events.v1), for broadcast
audiences and for writing first by phone: display name, labels, custom fields (as text), phones (E.164),
identities, blocked identities (`channel_id|external_user_id`: the cache's projections are restored from them
after a restart, handlers/projection_rebuild.py). Every write is idempotent (a set, or a set union), so a
redelivered event changes nothing; a merged contact is kept, marked, and never matched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.mongo import in_pages, inserted_of

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudienceQuery:
    """What the database can match; activity and marketing opt-out are checked on the chosen identity after."""

    tenant_id: str
    contact_ids: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # all of them
    custom_fields: tuple[tuple[str, str], ...] = ()  # each equal (as text)
    channel_ids: tuple[str, ...] = ()  # an identity on one of them


def _id(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}|{contact_id}"


@dataclass(frozen=True, slots=True)
class AudienceWrite:
    """One event's write: an upsert by the contact's id. `created`: the whole document the upsert makes of no
    document (a contact's creation), inserted instead where it is the contact's first write of a batch."""

    contact: str  # the document's `_id`
    update: Doc
    created: Doc | None = None

    def operation(self) -> UpdateOne:
        return UpdateOne({"_id": self.contact}, self.update, upsert=True)


def _distinct(values: Sequence[Any]) -> list[Any]:
    """`values` once each, in order: what `$addToSet` with `$each` makes of them in a new document."""
    kept: list[Any] = []
    for value in values:
        if value not in kept:
            kept.append(value)
    return kept


class AudienceRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._contacts = db["audience_contacts"]

    async def ensure_indexes(self) -> None:
        await self._contacts.create_index([("tenant_id", ASCENDING), ("labels", ASCENDING)])
        await self._contacts.create_index([("tenant_id", ASCENDING), ("identities.channel_id", ASCENDING)])
        await self._contacts.create_index([("tenant_id", ASCENDING), ("phones", ASCENDING)])

    # --- projection writes: operations applied in bulk, in the order of the events --------------------------
    @staticmethod
    def created(tenant_id: str, contact_id: str, display_name: str | None,
                identities: Sequence[Mapping[str, str]], phones: Sequence[str] = ()) -> AudienceWrite:
        update: Doc = {"$setOnInsert": {"tenant_id": tenant_id, "contact_id": contact_id},
                       "$addToSet": {"identities": {"$each": [dict(i) for i in identities]},
                                     "phones": {"$each": list(phones)}}}
        key = _id(tenant_id, contact_id)
        created: Doc = {"_id": key, "tenant_id": tenant_id, "contact_id": contact_id,
                        "identities": _distinct([dict(i) for i in identities]), "phones": _distinct(list(phones))}
        if display_name:
            update["$set"] = {"display_name": display_name}
            created["display_name"] = display_name
        return AudienceWrite(key, update, created)

    @staticmethod
    def updated(tenant_id: str, contact_id: str, display_name: str | None,
                fields: Mapping[str, str | None], phones: Sequence[str] | None = None) -> AudienceWrite:
        """`phones`, when given, is the contact's whole new list (as contacts publishes an edit)."""
        present: Doc = {f"fields.{name}": value for name, value in fields.items() if value is not None}
        if display_name:
            present["display_name"] = display_name
        if phones is not None:
            present["phones"] = list(phones)
        removed = {f"fields.{name}": "" for name, value in fields.items() if value is None}
        update: Doc = {"$setOnInsert": {"tenant_id": tenant_id, "contact_id": contact_id}}
        if present:
            update["$set"] = present
        if removed:
            update["$unset"] = removed
        return AudienceWrite(_id(tenant_id, contact_id), update)

    @staticmethod
    def identity_blocked(tenant_id: str, contact_id: str, identity: Mapping[str, str], blocked: bool) -> AudienceWrite:
        """The identity is the contact's (it may have been added after creation) and blocked or not."""
        mark = f"{identity['channel_id']}|{identity['external_user_id']}"
        update: Doc = {"$setOnInsert": {"tenant_id": tenant_id, "contact_id": contact_id},
                       "$addToSet": {"identities": dict(identity)}}
        if blocked:
            update["$addToSet"]["blocked"] = mark
        else:
            update["$pull"] = {"blocked": mark}
        return AudienceWrite(_id(tenant_id, contact_id), update)

    @staticmethod
    def labelled(tenant_id: str, contact_id: str, labels: Sequence[str]) -> AudienceWrite:
        return AudienceWrite(_id(tenant_id, contact_id),
                             {"$set": {"labels": list(labels)},
                              "$setOnInsert": {"tenant_id": tenant_id, "contact_id": contact_id}})

    async def write(self, writes: Sequence[AudienceWrite]) -> None:
        """In the events' order. A creation that is its contact's first write of the batch is inserted first (on
        the local database an upsert costs several inserts; the batch's other contacts' writes do not touch that
        document, and its own later ones still follow it); where the contact is stored already (a redelivery, or
        an earlier batch's event about it) its upsert stays in its place."""
        first_creations: dict[int, Doc] = {}  # by the write's place in the batch
        seen: set[str] = set()
        for index, write in enumerate(writes):
            if write.created is not None and write.contact not in seen:
                first_creations[index] = write.created
            seen.add(write.contact)
        inserted = await inserted_of(self._contacts, first_creations)
        rest = [write.operation() for index, write in enumerate(writes) if index not in inserted]
        if rest:
            await self._contacts.bulk_write(rest, ordered=True)

    async def merged(self, tenant_id: str, survivor_id: str, merged_id: str,
                     identities: Sequence[Mapping[str, str]], phones: Sequence[str] = ()) -> None:
        """The survivor takes every identity and phone, the merged contact's labels and the fields it lacks (as
        contacts does); the merged contact stays, marked, so a late event about it cannot bring it back."""
        gone = await self._contacts.find_one_and_update(
            {"_id": _id(tenant_id, merged_id)}, {"$set": {"merged_into": survivor_id},
                                                 "$setOnInsert": {"tenant_id": tenant_id, "contact_id": merged_id}},
            upsert=True)
        survivor = await self._contacts.find_one({"_id": _id(tenant_id, survivor_id)}) or {}
        fields = {f"fields.{name}": value for name, value in ((gone or {}).get("fields") or {}).items()
                  if name not in (survivor.get("fields") or {})}
        update: Doc = {"$setOnInsert": {"tenant_id": tenant_id, "contact_id": survivor_id},
                       "$addToSet": {"identities": {"$each": [dict(i) for i in identities]},
                                     "labels": {"$each": list((gone or {}).get("labels") or [])},
                                     "blocked": {"$each": list((gone or {}).get("blocked") or [])},
                                     "phones": {"$each": [*phones, *((gone or {}).get("phones") or [])]}}}
        if fields:
            update["$set"] = fields
        await self._contacts.update_one({"_id": _id(tenant_id, survivor_id)}, update, upsert=True)

    async def pages(self, query: AudienceQuery, page: int) -> AsyncIterator[list[Doc]]:
        """The matching contacts in pages of `page`, by id: never the whole audience in memory. One server cursor
        (the local database fetches every match of each query it is asked before its limit: pages asked as
        queries would cost the audience's size each)."""
        match: Doc = {"tenant_id": query.tenant_id, "merged_into": None}
        if query.contact_ids:
            match["_id"] = {"$in": [_id(query.tenant_id, contact) for contact in query.contact_ids]}
        if query.labels:
            match["labels"] = {"$all": list(query.labels)}
        for name, value in query.custom_fields:
            match[f"fields.{name}"] = value
        if query.channel_ids:
            match["identities.channel_id"] = {"$in": list(query.channel_ids)}
        async for docs in in_pages(self._contacts.find(match, sort=[("_id", ASCENDING)], batch_size=page), page):
            yield docs

    async def every_contact(self, page: int) -> AsyncIterator[list[Doc]]:
        """Every tenant's contacts (not merged away), `page` at a time: what the cache's projections restore."""
        cursor = self._contacts.find({"merged_into": None}, {"identities": 1, "fields": 1, "blocked": 1,
                                                             "tenant_id": 1, "contact_id": 1},
                                     sort=[("_id", ASCENDING)], batch_size=page)
        async for docs in in_pages(cursor, page):
            yield docs

    async def reachable_by_phone(self, tenant_id: str, phone: str, channel_id: str, limit: int) -> list[Doc]:
        """At most `limit` contacts (not merged away) that have this phone and an identity on this channel."""
        match: Doc = {"tenant_id": tenant_id, "phones": phone, "merged_into": None,
                      "identities.channel_id": channel_id}
        return await self._contacts.find(match, sort=[("_id", ASCENDING)], limit=limit).to_list()
