"""MongoDB repository of conversations: one open conversation per conversation key, optimistic versions."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from parley_common.batching import TickBatcher
from parley_common.ids import ConversationKey
from parley_common.mongo import DUPLICATE_KEY, insert_new
from parley_common.retries import Transient
from parley_router.adapters.tab_counters import TabCounters
from parley_router.domain import tab_counts
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status

Doc = dict[str, Any]
log = structlog.get_logger(__name__)
# Inbox pages look back 1 s, 6 s, 36 s, 3.6 min, 22 min, 2.2 h, 13 h, 3.2 d, 19 d, then all: the local database
# fetches every match of a query before applying its limit, so a window must hold few more than a page (10,000
# customers queued within the first window, 10 min before, cost 0.85-1.8 s per page; docs/benchmarks.md).
ACTIVITY_WINDOWS = tuple(timedelta(seconds=6 ** step) for step in range(9))
# Inbox pages, most recently active first: equality fields, then the sort field (MongoDB's ESR rule). One index
# per shape of a default inbox query — the tenant's (managers), a team's, an agent's own, each with or without a
# status tab — because the local database uses an index only when every field of the filter is in it; else it
# scans the collection (and it walks a hinted index whole: the hints of before cost ~35 µs per conversation).
INBOX_SCOPES: tuple[tuple[str, ...], ...] = ((), ("team_id",), ("assignee_agent",))
INBOX_INDEXES = [[("tenant_id", ASCENDING), ("archived", ASCENDING), ("blocked", ASCENDING),
                  *[(field, ASCENDING) for field in scope], *tab, ("last_activity_at", DESCENDING)]
                 for scope in INBOX_SCOPES for tab in ((), (("status", ASCENDING),))]
OPEN_STATUSES = [status.value for status in Status if status is not Status.CLOSED]
WRITE_TOKEN = "_write"  # which save wrote the stored version: tells the outcome of each save of a bulk write
# When a write last stored the conversation (the writing replica's clock): the capacity audit reads the
# conversations changed since its last round instead of every held one (adapters/capacity_audit.py).
CHANGED_AT = "changed_at"
# No time the router stores (an offer's expiry, a snooze's end, a bot's reply due, a close) is earlier than this.
# The sweep's queries name it as their lower bound: the local database starts an index range at its lower bound,
# and with none it walks from the status's first entry — every conversation of that status with no due time (null
# sorts first), fetched and dropped one by one, so the sweep grew with the open conversations instead of with the
# due ones. It is also the filter of the partial indexes on a time (`{field: {"$gte": NO_TIME_BEFORE}}`): only a
# conversation with that time set has an entry there.
NO_TIME_BEFORE = datetime(1970, 1, 1, tzinfo=UTC)
DUE_FIELDS = {Status.ASSIGNED: "offer_expires_at", Status.SNOOZED: "snoozed_until", Status.BOT: "bot_reply_due"}
# Every index of the conversations, each with the queries it serves. Each index costs every insert and every save
# that changes one of its fields (the local database, like MongoDB, rewrites those entries only); a partial index
# holds only the documents its filter matches (on MongoDB those alone pay for it). The local database uses a partial
# index for a query whose filter implies the index's filter and whose other fields lead its key, as MongoDB does.
CONVERSATION_INDEXES = [
    # the queue (Engine.dispatch, the supervisor's floor), and the capacity audit's full read: a tenant's held
    # conversations (equalities on the key's prefix, one query per status)
    IndexModel([("status", ASCENDING), ("tenant_id", ASCENDING), ("blocked", ASCENDING), ("priority", DESCENDING),
                ("waiting_since", ASCENDING)]),
    # inbox pages; an agent's own one (with a status) also serves their open conversations (`active_of_agent`)
    *(IndexModel(index) for index in INBOX_INDEXES),
    # a channel identity's conversations, newest first (sticky agent, the contacts' events)
    IndexModel([("tenant_id", ASCENDING), ("channel_id", ASCENDING), ("external_user_id", ASCENDING),
                ("opened_at", DESCENDING)]),
    # the sweep: one query per kind of due time, over the conversations that have one
    *(IndexModel([("status", ASCENDING), (field, ASCENDING)], name=f"due_{field}",
                 partialFilterExpression={field: {"$gte": NO_TIME_BEFORE}}) for field in DUE_FIELDS.values()),
    # a customer's history: the conversations linked to their card
    IndexModel([("tenant_id", ASCENDING), ("contact_id", ASCENDING), ("opened_at", DESCENDING)], name="history",
               partialFilterExpression={"contact_id": {"$gt": ""}}),
    # supervisors' figures of a period: opened in it, closed in it (closed ones only)
    IndexModel([("tenant_id", ASCENDING), ("opened_at", ASCENDING)]),
    IndexModel([("tenant_id", ASCENDING), ("closed_at", ASCENDING)], name="closed",
               partialFilterExpression={"closed_at": {"$gte": NO_TIME_BEFORE}}),
    # the capacity audit between its full reads: a tenant's conversations changed since its last round
    IndexModel([("tenant_id", ASCENDING), (CHANGED_AT, ASCENDING)], name="changed"),
]
# Indexes of earlier releases, dropped at start once the ones above exist: replaced by indexes holding every field
# of their queries (see INBOX_INDEXES), or by the partial and reordered ones above — every write kept them up.
RETIRED_INDEXES = ("tenant_id_1_last_activity_at_-1", "tenant_id_1_status_1_last_activity_at_-1",
                   "tenant_id_1_status_1_priority_-1_waiting_since_1", "tenant_id_1_assignee_agent_1",
                   "tenant_id_1_status_1_blocked_1_priority_-1_waiting_since_1", "status_1_offer_expires_at_1",
                   "status_1_snoozed_until_1", "status_1_bot_reply_due_1", "tenant_id_1_assignee_agent_1_status_1",
                   "tenant_id_1_contact_id_1_opened_at_-1", "tenant_id_1_closed_at_1")


def to_doc(conv: Conversation) -> Doc:
    # a shallow copy: the fields are immutable values, and the nested ones are rebuilt below (`dataclasses.asdict`
    # deep-copies every value, recursively: most of the Python cost of storing a conversation)
    doc = dict(vars(conv))
    doc["_id"] = doc.pop("id")
    doc["status"] = conv.status.value
    doc["assignee"] = {"kind": conv.assignee.kind.value, "id": conv.assignee.id} if conv.assignee else None
    doc["assignee_agent"] = conv.agent  # indexed lookups of an agent's conversations
    doc["labels"] = list(conv.labels)
    doc["declined_by"] = list(conv.declined_by)
    return doc


def _write_error(error: Doc) -> Exception:
    if error.get("code") == DUPLICATE_KEY:
        return DuplicateKeyError(error.get("errmsg", "duplicate key"), DUPLICATE_KEY, error)
    return OperationFailure(error.get("errmsg", "write failed"), error.get("code"), error)


def from_doc(doc: Doc) -> Conversation:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "assignee_agent", WRITE_TOKEN, CHANGED_AT)}
    assignee = fields.get("assignee")
    fields.update(
        id=doc["_id"], status=Status(doc["status"]), labels=tuple(doc.get("labels", ())),
        declined_by=tuple(doc.get("declined_by", ())),
        contact_fields=tuple((name, value) for name, value in doc.get("contact_fields", ())),
        assignee=Assignee(AssigneeKind(assignee["kind"]), assignee["id"]) if assignee else None,
    )
    return Conversation(**fields)


def equality_parts(query: Doc) -> list[Doc]:
    """Queries of equalities whose union matches what `query` matches: its `$or` of single-field equalities (or
    `$in` lists) becomes one query per value. [] when no value can match; `[query]` when it cannot be split so
    (other operators, several fields in a branch, a field also constrained another way)."""
    branches = query.get("$or")
    if branches is None:
        return [query]
    rest = {field: condition for field, condition in query.items() if field != "$or"}
    parts: list[Doc] = []
    for branch in branches:
        if len(branch) != 1:
            return [query]
        [(field, condition)] = branch.items()
        values = condition["$in"] if isinstance(condition, dict) and set(condition) == {"$in"} else [condition]
        if any(isinstance(value, dict | list) for value in values) or isinstance(rest.get(field), dict | list):
            return [query]
        parts += [{**rest, field: value} for value in values if rest.get(field, value) == value]
    return parts


def _newest_first(convs: Iterable[Conversation]) -> list[Conversation]:
    return sorted(convs, key=lambda conv: (conv.last_activity_at, conv.id), reverse=True)


class OpeningInProgress(Transient):
    """The key's pointer was claimed moments ago and its conversation is not stored yet: another delivery of the
    same message is opening it (a consumer group rebalancing hands a record still in progress to a second
    consumer). `open_for` waits up to 200 ms for it first; then this is handled like any passing failure, by
    delivering again: by then the conversation is there. Before, this delivery took the pointer for one left by
    a crash, deleted it, and the retry opened a second conversation (seen as a flaky journey test once inbound
    had two consumers)."""


# A pointer without its conversation older than this was left by an attempt that died between the two writes.
OPENING_GRACE = timedelta(seconds=30)
OPENING_WAITS, OPENING_WAIT_SECONDS = 4, 0.05  # before giving up to a redelivery
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # pointers written before claim times were recorded


class StaleVersion(Transient):
    """Someone saved the conversation since it was read; read again and retry (a record whose handler meets it is
    tried again without limit: parley_common.retries)."""


class ConversationRepository:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._conversations = db["conversations"]
        self.counters = TabCounters(db)  # the inbox tabs' counts, moved by every stored transition
        self._open = db["open_conversations"]  # _id = conversation key: at most one open conversation
        # concurrent handlers of a consumer batch share one query / one bulk write (parley_common.batching)
        self._gets: TickBatcher[str, Doc | None] = TickBatcher(self._get_many_docs)
        self._pointers: TickBatcher[str, Doc | None] = TickBatcher(self._pointers_of)
        self._claims: TickBatcher[Doc, None] = TickBatcher(self._insert_pointers)
        self._inserts: TickBatcher[Conversation, None] = TickBatcher(self._insert_conversations)
        self._saves: TickBatcher[tuple[Conversation, Conversation], bool] = TickBatcher(self._save_many)

    async def ensure_indexes(self) -> None:
        """The indexes of `CONVERSATION_INDEXES`, then the retired ones dropped: queries stay served throughout."""
        await self.counters.ensure_indexes()
        await self._conversations.create_indexes(CONVERSATION_INDEXES)
        existing = await self._conversations.index_information()
        for name in RETIRED_INDEXES:
            if name in existing:
                await self._conversations.drop_index(name)

    async def get(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        doc = await self._gets.submit(conversation_id)  # by key alone: the fastest lookup
        return from_doc(doc) if doc and doc["tenant_id"] == tenant_id else None

    async def _get_many_docs(self, conversation_ids: list[str]) -> list[Doc | None]:
        found = {doc["_id"]: doc async for doc in self._conversations.find({"_id": {"$in": conversation_ids}})}
        return [found.get(conversation_id) for conversation_id in conversation_ids]

    async def _pointers_of(self, keys: list[str]) -> list[Doc | None]:
        """Each key's pointer with the conversation it names as stored (`stored`: [] when it is not), in one round
        trip instead of the pointers' and then their conversations' (a `$lookup` by `_id`, an index lookup)."""
        found = {doc["_id"]: doc async for doc in await self._open.aggregate([
            {"$match": {"_id": {"$in": keys}}},
            {"$lookup": {"from": self._conversations.name, "localField": "conversation_id", "foreignField": "_id",
                         "as": "stored"}}])}
        return [found.get(key) for key in keys]

    async def _insert_pointers(self, pointers: list[Doc]) -> list[BaseException | None]:
        """One insert for many; a key that already has an open conversation fails only its own item."""
        try:
            await self._open.insert_many(pointers, ordered=False)
        except BulkWriteError as exc:
            failed = {error["index"]: error for error in exc.details.get("writeErrors", ())}
            return [_write_error(failed[index]) if index in failed else None for index in range(len(pointers))]
        return [None] * len(pointers)

    async def _insert_conversations(self, convs: list[Conversation]) -> list[None]:
        """Inserts (the local database spends half as long on one as on a replace-upsert); ids are new, so a
        duplicate is this same document written by an earlier attempt (counted by that attempt)."""
        changed_at = datetime.now(UTC)
        written_before = await insert_new(self._conversations, [{**to_doc(conv), CHANGED_AT: changed_at}
                                                                for conv in convs])
        await self._count([(None, conv) for index, conv in enumerate(convs) if index not in written_before])
        return [None] * len(convs)

    async def _count(self, transitions: Sequence[tuple[Conversation | None, Conversation]]) -> None:
        """Move the tab counters by the transitions just stored — each once: a transition is stored by exactly
        one write (a new id, or a save over the version it was read at). Not raised: the conversations are
        stored; a counter that missed them is set right by the repair (Upkeep.repair_tab_counts)."""
        try:
            await self.counters.apply(tab_counts.moves(transitions), tab_counts.arrivals(transitions))
        except PyMongoError:
            log.warning("tab_counts_missed", transitions=len(transitions))

    async def get_many(self, tenant_id: str, conversation_ids: list[str]) -> list[Conversation]:
        found = await asyncio.gather(*(self.get(tenant_id, conversation_id) for conversation_id in conversation_ids))
        return [conv for conv in found if conv is not None]

    async def open_for(self, key: ConversationKey) -> Conversation | None:
        pointer = await self._pointers.submit(str(key))
        stored = [doc for doc in pointer.get("stored", ()) if doc["tenant_id"] == key.tenant_id] if pointer else []
        conv = from_doc(stored[0]) if stored else None
        if pointer and conv is None and datetime.now(UTC) - pointer.get("claimed_at", _LONG_AGO) < OPENING_GRACE:
            for _ in range(OPENING_WAITS):  # the other delivery is usually a few milliseconds from storing it
                await asyncio.sleep(OPENING_WAIT_SECONDS)
                if (conv := await self.get(key.tenant_id, pointer["conversation_id"])) is not None:
                    break
            else:
                raise OpeningInProgress(str(key))
        if pointer and (conv is None or not conv.is_open):  # left by a crash, or by a reopen that lost its race
            await self._drop_pointer(key, pointer["conversation_id"])
            return None
        return conv

    async def applied(self, key: ConversationKey, command_id: str, lookback: int = 20) -> bool:
        """Whether one of the key's latest `lookback` conversations was last changed by this after-send action (a
        close leaves none open). Equality on the index prefix and its sort only, as `last_agent_for`: a condition on
        another field made the local database scan the collection."""
        cursor = self._conversations.find(
            {"tenant_id": key.tenant_id, "channel_id": key.channel_id, "external_user_id": key.external_user_id},
            sort=[("opened_at", DESCENDING)], projection={"applied_command_id": 1}, limit=lookback)
        return any([doc.get("applied_command_id") == command_id async for doc in cursor])

    async def last_agent_for(self, key: ConversationKey, lookback: int = 20) -> str | None:
        """The agent of the customer's latest conversation that had one, among the last `lookback`: equality on
        the index prefix and its sort only (a `$ne` on the agent made the local database scan the collection)."""
        cursor = self._conversations.find(
            {"tenant_id": key.tenant_id, "channel_id": key.channel_id, "external_user_id": key.external_user_id},
            sort=[("opened_at", DESCENDING)], projection={"assignee_agent": 1}, limit=lookback)
        async for doc in cursor:
            if doc.get("assignee_agent"):
                return str(doc["assignee_agent"])
        return None

    async def of_identities(self, keys: Iterable[ConversationKey],
                            limit_each: int = 500) -> dict[ConversationKey, list[Conversation]]:
        """The conversations of these channel identities, by identity: one query per tenant and channel, equalities
        and an `$in` on the index's prefix (the local database scans the collection for an `$or` of pairs); at most
        `limit_each` conversations per identity on average."""
        found: dict[ConversationKey, list[Conversation]] = {}
        by_channel: dict[tuple[str, str], set[str]] = {}
        for key in keys:
            by_channel.setdefault((key.tenant_id, key.channel_id), set()).add(key.external_user_id)
        for (tenant_id, channel_id), users in by_channel.items():
            for conv in await self.find({"tenant_id": tenant_id, "channel_id": channel_id,
                                         "external_user_id": {"$in": sorted(users)}}, None, limit_each * len(users)):
                found.setdefault(ConversationKey(tenant_id, channel_id, conv.external_user_id), []).append(conv)
        return found

    async def of_contact(self, tenant_id: str, contact_id: str, limit: int,
                         before: tuple[datetime, str] | None = None) -> list[Conversation]:
        """A customer's conversations on every channel, newest first; `before` (opened_at, id of the last one
        shown) asks for the page after it: the ones opened at that instant are read by equality, then older."""
        query: Doc = {"tenant_id": tenant_id, "contact_id": contact_id}
        order = [("opened_at", DESCENDING), ("_id", DESCENDING)]
        if before is None:
            return await self.find(query, order, limit)
        opened_at, last_id = before
        tied = [conv for conv in await self.find({**query, "opened_at": opened_at}, order, 0) if conv.id < last_id]
        return (tied + await self.find({**query, "opened_at": {"$lt": opened_at}}, order, limit))[:limit]

    async def set_contact_ids(self, contact_ids: Mapping[str, str]) -> None:
        """Link closed conversations (conversation id → contact id) to their customer's card (history), in one
        write; the version moves, so a save from an older read fails instead of undoing it."""
        if contact_ids:
            changed_at = datetime.now(UTC)
            await self._conversations.bulk_write([
                UpdateOne({"_id": conversation_id}, {"$set": {"contact_id": contact_id, CHANGED_AT: changed_at},
                                                     "$inc": {"version": 1}})
                for conversation_id, contact_id in contact_ids.items()], ordered=False)

    async def create(self, conv: Conversation) -> Conversation:
        """Insert a new open conversation; if another one won the race for this key, return that one."""
        if (existing := await self.claim_key(conv)) is not None:
            return existing
        try:
            return await self.insert(conv)
        except Exception:
            await self.release_claim(conv)
            raise

    async def claim_key(self, conv: Conversation) -> Conversation | None:
        """Make the new `conv` its key's open conversation before it is stored; returns the open conversation
        of another delivery that won the race (None: the key is ours, and `insert` must follow, or
        `release_claim`: a claim without its conversation holds the key's redeliveries off for the grace)."""
        key = ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id)
        try:
            await self._claims.submit({"_id": str(key), "conversation_id": conv.id, "tenant_id": conv.tenant_id,
                                       "claimed_at": datetime.now(UTC)})
        except DuplicateKeyError:
            existing = await self.open_for(key)
            if existing is not None:
                return existing
            raise
        return None

    async def insert(self, conv: Conversation) -> Conversation:
        await self._inserts.submit(conv)
        return conv

    async def release_claim(self, conv: Conversation) -> None:
        """The key is free again (not yet stored, or closed): a new message opens a new conversation."""
        await self._drop_pointer(ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id), conv.id)

    async def _drop_pointer(self, key: ConversationKey, conversation_id: str) -> None:
        """Only while it still names that conversation: another one may have claimed the key since."""
        await self._open.delete_one({"_id": str(key), "conversation_id": conversation_id})

    async def claim_open(self, conv: Conversation) -> bool:
        """Make `conv` its key's open conversation again (reopen); False when another one is open."""
        key = str(ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id))
        try:
            await self._open.insert_one({"_id": key, "conversation_id": conv.id, "tenant_id": conv.tenant_id})
        except DuplicateKeyError:
            pointer = await self._open.find_one({"_id": key})
            return pointer is not None and pointer["conversation_id"] == conv.id
        return True

    async def save(self, conv: Conversation, previous: Conversation) -> Conversation:
        """Store `conv`, changed from `previous` as read, if nobody saved since it was read (same version);
        returns it with the next version."""
        saved = replace(conv, version=conv.version + 1)
        if not await self._saves.submit((previous, saved)):
            raise StaleVersion(conv.id)
        if saved.status is Status.CLOSED:
            await self.release_claim(conv)
        return saved

    async def _save_many(self, saves: list[tuple[Conversation, Conversation]]) -> list[bool]:
        """One versioned replace per save in one bulk write. A bulk result only counts matches, so when some
        lost to a concurrent writer, each save's token, read back, tells which ones did. (A save that matched
        and was overwritten before the read-back reads as lost: its caller retries or gives its capacity slot
        back, the capacity reconciler repairs the slot and the tab counters' repair its count.)"""
        changed_at = datetime.now(UTC)
        docs = [{**to_doc(saved), WRITE_TOKEN: uuid.uuid4().hex, CHANGED_AT: changed_at} for _, saved in saves]
        result = await self._conversations.bulk_write(
            [ReplaceOne({"_id": doc["_id"], "version": previous.version}, doc)
             for (previous, _), doc in zip(saves, docs, strict=True)], ordered=False)
        if result.matched_count == len(saves):
            await self._count(saves)
            return [True] * len(saves)
        stored = {doc["_id"]: doc.get(WRITE_TOKEN) async for doc in self._conversations.find(
            {"_id": {"$in": [doc["_id"] for doc in docs]}}, projection={WRITE_TOKEN: 1})}
        won = [stored.get(doc["_id"]) == doc[WRITE_TOKEN] for doc in docs]
        await self._count([save for save, ok in zip(saves, won, strict=True) if ok])
        return won

    async def queued(self, tenant_id: str, limit: int) -> list[Conversation]:
        cursor = self._conversations.find({"tenant_id": tenant_id, "status": Status.QUEUED.value,
                                           "blocked": False},
                                          sort=[("priority", DESCENDING), ("waiting_since", ASCENDING)],
                                          limit=limit)
        return [from_doc(doc) async for doc in cursor]

    async def due(self, now: datetime, limit: int = 500) -> list[Conversation]:
        """Offers past their timeout, snoozes that ran out and bots that did not answer in time, over all tenants
        (one query each, each served by one index: the local database scans the collection for an `$or`)."""
        due = {"$gte": NO_TIME_BEFORE, "$lte": now}
        found = await asyncio.gather(*(self.find({"status": status.value, field: due}, None, limit)
                                       for status, field in DUE_FIELDS.items()))
        return [conv for convs in found for conv in convs][:limit]

    async def find(self, query: Doc, sort: list[tuple[str, int]] | None, limit: int) -> list[Conversation]:
        cursor = self._conversations.find(query, sort=sort, limit=limit)
        return [from_doc(doc) async for doc in cursor]

    async def stream(self, query: Doc, sort: list[tuple[str, int]], batch: int) -> AsyncIterator[list[Conversation]]:
        """Every match in `sort` order, `batch` at a time (one server cursor: an export never holds them all)."""
        page: list[Conversation] = []
        async for doc in self._conversations.find(query, sort=sort, batch_size=batch):
            page.append(from_doc(doc))
            if len(page) == batch:
                yield page
                page = []
        if page:
            yield page

    async def find_latest(self, query: Doc, limit: int, now: datetime,
                          after: tuple[datetime, str] | None = None) -> list[Conversation]:
        """The `limit` most recently active matches, newest first (by last activity, then id); `after` (the last
        activity and id of a previous page's last item) asks for the page after it. Asked in growing windows of
        activity (`ACTIVITY_WINDOWS`: 1 s, each 6 times longer, then all) back from `after`, or for a first page
        from the latest arrival in the tab's buckets (`TabCounters.latest_arrival`; `now` when unknown) with
        everything since: a burst of 10,000 an hour ago is not fetched whole because its window began at `now`.
        As the union of equality-only queries (`equality_parts`): each walks one inbox index within its window, on
        MongoDB as on the local database, which otherwise sorts every match of the tenant's history in memory."""
        parts = equality_parts(query)
        if not parts:
            return []
        order = [("last_activity_at", DESCENDING), ("_id", DESCENDING)]
        tied: list[Conversation] = []
        older: Doc = {}
        if after is None:
            start = min(now, await self._latest_arrival(query) or now)
        else:  # the conversations active at the same instant as the last one shown, then older
            start, last_id = after
            same_instant = await asyncio.gather(*(self.find({**part, "last_activity_at": start}, order, 0)
                                                  for part in parts))
            tied = [conv for convs in same_instant for conv in convs if conv.id < last_id]
            older = {"$lt": start}

        async def newest(window: timedelta | None) -> list[Conversation]:
            since = {**older, **({"$gte": start - window} if window else {})}
            found = await asyncio.gather(*(self.find({**part, **({"last_activity_at": since} if since else {})},
                                                     order, limit) for part in parts))
            return _newest_first({conv.id: conv for convs in (tied, *found) for conv in convs}.values())[:limit]

        for window in ACTIVITY_WINDOWS:
            if len(latest := await newest(window)) >= limit:
                return latest
        return await newest(None)

    async def _latest_arrival(self, query: Doc) -> datetime | None:
        tenant_id, status = query.get("tenant_id"), query.get("status")
        if not isinstance(tenant_id, str):  # a search: its conditions are nested
            return None
        return await self.counters.latest_arrival(tenant_id, status if isinstance(status, str) else None)

    async def count(self, query: Doc, cap: int = 0) -> int:
        """How many match; `cap` > 0 stops counting there."""
        if cap:
            return await self._conversations.count_documents(query, limit=cap)
        return await self._conversations.count_documents(query)

    async def active_of_agent(self, tenant_id: str, login: str, limit: int = 10_000) -> list[Conversation]:
        """The agent's open conversations by id: one query per open status, archived or not, blocked or not —
        equalities on the prefix of the agent's inbox index (the local database scans the collection for `$ne`,
        and for `$in` when a field follows it in the index)."""
        found = await asyncio.gather(*(
            self.find({"tenant_id": tenant_id, "archived": archived, "blocked": blocked, "assignee_agent": login,
                       "status": status}, [("_id", ASCENDING)], limit)
            for archived, blocked, status in itertools.product((False, True), (False, True), OPEN_STATUSES)))
        return sorted((conv for convs in found for conv in convs), key=lambda conv: conv.id)[:limit]
