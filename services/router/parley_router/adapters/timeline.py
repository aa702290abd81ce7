"""MongoDB repository of timeline entries and of processed event ids (idempotent consumption)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.batching import TickBatcher
from parley_common.mongo import insert_new
from parley_router.domain.timeline import ORDER_FIELDS, Entry, EntryKind, tiebreak_rank

Doc = dict[str, Any]
# an entry as the API shows it: not the bookkeeping of revisions and status moves
SHOWN = {"_id": 0, "revision_event_ids": 0, "status_moved_by": 0, "status_moved_from": 0}
ORDER = [(field, ASCENDING) for field in ORDER_FIELDS]
NEWEST_FIRST = [(field, DESCENDING) for field in ORDER_FIELDS]  # the same index, walked from its end
RETIRED_ORDER_INDEX = "conversation_id_1_at_1_entry_id_1"


class TimelineRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._entries = db["timeline"]
        self._media = db["media_links"]
        # concurrent handlers of a consumer batch share one bulk write / one query (parley_common.batching)
        self._puts: TickBatcher[tuple[str, Doc, Doc], bool] = TickBatcher(self._put_many)
        self._lookups: TickBatcher[tuple[str, str], str | None] = TickBatcher(self._conversations_of)

    async def ensure_indexes(self) -> None:
        await self._entries.create_index([("conversation_id", ASCENDING), *ORDER])
        if RETIRED_ORDER_INDEX in await self._entries.index_information():  # the order before arrival was kept
            await self._entries.drop_index(RETIRED_ORDER_INDEX)
        await self._entries.create_index([("tenant_id", ASCENDING), ("provider_message_id", ASCENDING)])

    async def put(self, tenant_id: str, conversation_id: str, entry_id: str, kind: str, at: datetime,
                  body: Doc, *, created_with: Doc | None = None, received_at: datetime | None = None) -> bool:
        """Insert or refresh one entry (same id → same document); True when it is new. `created_with`: fields
        written only by the write that creates the entry (a message's first status). `received_at`: when ingest
        received an inbound message (its place among entries of the same second)."""
        # the first sighting fixes the entry's place in the order; later updates never move it
        placed = {"at": at, "rank": tiebreak_rank(EntryKind(kind)), **(created_with or {})}
        if received_at is not None:
            placed["received_at"] = received_at
        return await self._puts.submit((f"{conversation_id}|{entry_id}",
                                        _entry_fields(tenant_id, conversation_id, entry_id, kind, body), placed))

    async def _put_many(self, puts: list[tuple[str, Doc, Doc]]) -> list[bool]:
        """Inserted first (almost every entry is new, and an insert costs the local database half an upsert); the
        ones already there refreshed by an upsert that leaves their place alone."""
        failed = sorted(await insert_new(self._entries, [{"_id": key, **_nested(fields), **placed}
                                                         for key, fields, placed in puts]))
        created: set[int] = set()
        if failed:
            result = await self._entries.bulk_write(
                [UpdateOne({"_id": puts[index][0]}, {"$set": puts[index][1], "$setOnInsert": puts[index][2]},
                           upsert=True) for index in failed], ordered=False)
            created = {failed[position] for position in result.upserted_ids or {}}
        return [index not in failed or index in created for index in range(len(puts))]

    async def put_status(self, tenant_id: str, conversation_id: str, entry_id: str, at: datetime, body: Doc,
                         status: str, rank: int, event_id: str) -> tuple[bool, tuple[int, datetime] | None]:
        """A later status of one of our messages (its entry most likely there), in one write: the entry created at
        this status when it is not there, its fields refreshed (`statuses.<status>` added), its status moved on
        only when this one is further (statuses arrive unordered: read after delivered, never back). Returns
        whether it is new, and as `advance_status` whether this status moved it on — also to a redelivery of the
        event that moved it (`event_id`): a handler that stopped after this write and before the conversation's
        (a crash, a lost race) does the rest when the event comes again."""
        fields = _entry_fields(tenant_id, conversation_id, entry_id, EntryKind.OUTBOUND.value, body)
        had = {"$ifNull": ["$status_rank", -1]}
        moves = {"$lt": [had, rank]}
        before = await self._entries.find_one_and_update(
            {"_id": f"{conversation_id}|{entry_id}"},
            [{"$set": {**{name: {"$literal": value} for name, value in fields.items()},
                       "statuses": {"$mergeObjects": [{"$ifNull": ["$statuses", {}]}, {status: {"$literal": at}}]},
                       "at": {"$ifNull": ["$at", {"$literal": at}]},
                       "rank": {"$ifNull": ["$rank", tiebreak_rank(EntryKind.OUTBOUND)]},
                       "status": {"$cond": [moves, status, "$status"]},
                       "status_rank": {"$max": [had, rank]},
                       "status_moved_by": {"$cond": [moves, {"$literal": event_id}, "$status_moved_by"]},
                       "status_moved_from": {"$cond": [moves, had, "$status_moved_from"]}}}],
            upsert=True, projection={"status_rank": 1, "at": 1, "status_moved_by": 1, "status_moved_from": 1})
        if before is None:
            return True, (-1, at)
        rank_before = int(before.get("status_rank", -1))
        if rank_before < rank:
            return False, (rank_before, before["at"])
        if before.get("status_moved_by") == event_id:  # this event moved it, and is delivered again
            return False, (int(before["status_moved_from"]), before["at"])
        return False, None

    async def advance_status(self, conversation_id: str, entry_id: str, status: str,
                             rank: int) -> tuple[int, datetime] | None:
        """Statuses arrive unordered: keep the furthest one (read after delivered, never back). When this one
        moved it on: the rank it had before (-1: none) and the entry's time (its first status); None when not."""
        before = await self._entries.find_one_and_update(
            {"_id": f"{conversation_id}|{entry_id}", "status_rank": {"$not": {"$gte": rank}}},
            {"$set": {"status": status, "status_rank": rank}}, projection={"status_rank": 1, "at": 1})
        return None if before is None else (int(before.get("status_rank", -1)), before["at"])

    async def link_media(self, tenant_id: str, provider_message_id: str, attachment_key: str, media: Doc) -> None:
        """Media may arrive before its message: links are kept apart and joined when the timeline is read."""
        await self._media.update_one({"_id": f"{tenant_id}|{provider_message_id}"},
                                     {"$set": {f"media.{_field_name(attachment_key)}": media,
                                               "tenant_id": tenant_id}},
                                     upsert=True)

    async def _media_of(self, tenant_id: str, provider_message_ids: list[str]) -> dict[str, Doc]:
        ids = [f"{tenant_id}|{pmid}" for pmid in provider_message_ids]
        cursor = self._media.find({"_id": {"$in": ids}})
        return {doc["_id"].split("|", 1)[1]: doc.get("media", {}) async for doc in cursor}

    async def entry_of_provider_message(self, tenant_id: str, provider_message_id: str) -> Doc | None:
        """The entry (inbound or ours) showing this provider message, with its document id."""
        return await self._entries.find_one({"tenant_id": tenant_id, "provider_message_id": provider_message_id})

    async def revise(self, entry_key: str, event_id: str, fields: Doc, before: Doc | None) -> bool:
        """Apply one revision once (a redelivered event finds its id recorded); `before` is kept in `revisions`."""
        pushes: Doc = {"revision_event_ids": event_id}
        if before is not None:
            pushes["revisions"] = before
        result = await self._entries.update_one({"_id": entry_key, "revision_event_ids": {"$ne": event_id}},
                                                {"$set": fields, "$push": pushes})
        return result.modified_count == 1

    async def entry_of_group(self, tenant_id: str, conversation_id: str, group_id: str) -> Doc | None:
        return await self._entries.find_one({"tenant_id": tenant_id, "conversation_id": conversation_id,
                                             "group_id": group_id})

    async def add_to_group(self, entry_key: str, event_id: str, provider_message_id: str, parts: list[Doc],
                           text: str) -> None:
        """Another message of the group joins its entry: its parts appended, its media joined (once per event)."""
        update: Doc = {"$push": {"parts": {"$each": parts}, "revision_event_ids": event_id,
                                 "grouped_provider_message_ids": provider_message_id}}
        if text:
            update["$set"] = {"text": text}
        await self._entries.update_one({"_id": entry_key, "revision_event_ids": {"$ne": event_id}}, update)

    async def conversation_of_provider_message(self, tenant_id: str, provider_message_id: str) -> str | None:
        return await self._lookups.submit((tenant_id, provider_message_id))

    async def _conversations_of(self, keys: list[tuple[str, str]]) -> list[str | None]:
        found: dict[tuple[str, str], str] = {}
        for tenant_id in {tenant_id for tenant_id, _ in keys}:
            ids = list({pmid for tenant, pmid in keys if tenant == tenant_id})
            cursor = self._entries.find({"tenant_id": tenant_id, "provider_message_id": {"$in": ids}},
                                        projection={"conversation_id": 1, "provider_message_id": 1})
            found.update({(tenant_id, doc["provider_message_id"]): doc["conversation_id"] async for doc in cursor})
        return [found.get(key) for key in keys]

    async def entries(self, tenant_id: str, conversation_id: str, limit: int = 500,
                      after: Entry | None = None) -> list[Doc]:
        """The first `limit` entries in order, or the first after the entry at `after`'s place (a page cursor)."""
        return await self._page(tenant_id, conversation_id, limit, ORDER, _after(after) if after else None)

    async def entries_before(self, tenant_id: str, conversation_id: str, limit: int = 500,
                             before: Entry | None = None) -> list[Doc]:
        """The last `limit` entries (the newest page), or the last before the entry at `before`'s place; in
        order, as `entries` gives them."""
        newest_first = await self._page(tenant_id, conversation_id, limit, NEWEST_FIRST,
                                        _before(before) if before else None)
        return newest_first[::-1]

    async def _page(self, tenant_id: str, conversation_id: str, limit: int, sort: list[tuple[str, int]],
                    beyond: Doc | None) -> list[Doc]:
        query: Doc = {"tenant_id": tenant_id, "conversation_id": conversation_id}
        if beyond is not None:
            query = {"$and": [query, beyond]}
        cursor = self._entries.find(query, sort=sort, limit=limit, projection=SHOWN)
        return await self._with_media(tenant_id, [doc async for doc in cursor])

    async def entry(self, tenant_id: str, conversation_id: str, entry_id: str) -> Doc | None:
        """One entry as `entries` shows it (media joined): what a live update carries."""
        doc = await self._entries.find_one({"_id": f"{conversation_id}|{entry_id}", "tenant_id": tenant_id},
                                           projection=SHOWN)
        return (await self._with_media(tenant_id, [doc]))[0] if doc else None

    async def _with_media(self, tenant_id: str, entries: list[Doc]) -> list[Doc]:
        """Each attachment of a message with its state: as media last told (stored, failed with the reason,
        pending again, expired), else `pending` — shown from the moment the message is, not once media is done."""
        provider_ids = [doc["provider_message_id"] for doc in entries if doc.get("provider_message_id")]
        media = await self._media_of(tenant_id, provider_ids) if provider_ids else {}
        for doc in entries:
            links = dict(media.get(doc.get("provider_message_id") or "", {}))
            shown = [links.pop(_field_name(part["attachment_id"]), None) or _pending(part)
                     for part in doc.get("parts") or () if part.get("kind") == "media"]
            shown += links.values()  # linked under another key (an older link, a media id)
            if shown:
                doc["media"] = shown
        return entries


class ProcessedEvents:
    """Event ids a consumer finished; written last, so a crash before it means the whole handling repeats
    (every step of which is itself idempotent)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._done = db["processed_events"]

    async def seen(self, consumer: str, event_id: str) -> bool:
        return await self._done.find_one({"_id": f"{consumer}:{event_id}"}) is not None

    async def mark(self, consumer: str, event_id: str, at: datetime) -> None:
        await self._done.update_one({"_id": f"{consumer}:{event_id}"}, {"$set": {"at": at}}, upsert=True)


def _after(last: Entry) -> Doc:
    """Entries after `last` in the order of ORDER_FIELDS."""
    return _beyond(last, later=True)


def _before(first: Entry) -> Doc:
    """Entries before `first` in the order of ORDER_FIELDS (the mirror of `_after`)."""
    return _beyond(first, later=False)


def _beyond(entry: Entry, *, later: bool) -> Doc:
    """Entries on one side of `entry` in the order of ORDER_FIELDS; a missing received_at sorts before any time, as
    in the sort (a query's `$gt` / `$lt` would not cross between missing and a date)."""
    side = "$gt" if later else "$lt"
    place = {"at": entry.at, "rank": tiebreak_rank(entry.kind)}
    received: list[Doc]  # the entry's place, and a received_at on this side of its own
    same: Doc
    if entry.received_at is None:
        received, same = ([{"received_at": {"$type": "date"}}] if later else []), {"received_at": None}
    else:
        received = [{"received_at": {"$gt": entry.received_at}} if later
                    else {"received_at": {"$not": {"$gte": entry.received_at}}}]  # missing or earlier
        same = {"received_at": entry.received_at}
    return {"$or": [{"at": {side: entry.at}}, {"at": entry.at, "rank": {side: place["rank"]}},
                    *({**place, **other} for other in received), {**place, **same, "entry_id": {side: entry.id}}]}


def _entry_fields(tenant_id: str, conversation_id: str, entry_id: str, kind: str, body: Doc) -> Doc:
    return {**body, "tenant_id": tenant_id, "conversation_id": conversation_id, "entry_id": entry_id, "kind": kind}


def _pending(part: Doc) -> Doc:
    return {"media_id": None, "state": "pending", "attachment_id": part["attachment_id"],
            **{name: part.get(name) for name in ("media_kind", "mime_type", "file_name")}}


def _field_name(key: str) -> str:
    """A provider id as one MongoDB field name: WhatsApp ids ('wamid.HBg…:0') hold dots, which would nest."""
    return key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _nested(fields: Doc) -> Doc:
    """The document an upsert's `$set` of these fields creates: dotted paths ("statuses.read") become nested."""
    doc: Doc = {}
    for path, value in fields.items():
        *parents, name = path.split(".")
        target = doc
        for parent in parents:
            target = target.setdefault(parent, {})
        target[name] = value
    return doc
