"""Reads and repairs for the capacity reconciler: the Redis slot sets (with their take stamps) and the
conversations MongoDB says are held by an agent.

Slot set: `{prefix}router:active:{tenant}:{login}:{channel type}` (see presence.py); every take stamps the
conversation id with the Redis server time (ms) in the zset `<set>:taken_at`. Repairs are one Lua script per
set: compare-and-delete (only slots stamped before the cutoff), re-add, and pruning of stamps left behind by
released slots. Like presence.py, the stamp key is derived inside the script (single-instance Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from parley_router.adapters.conversations import CHANGED_AT
from parley_router.adapters.tab_counters import TabCounters
from parley_router.domain.capacity import SlotKey, SlotRepair, by_slot
from parley_router.domain.conversation import Status

Doc = dict[str, Any]

# KEYS[1] = slot set; ARGV[1] = cutoff (ms, server time): only slots stamped before it may go; ARGV[2] = when the
# reads behind these repairs began (ms, server time); ARGV[3] = n; ARGV[4..3+n] = stale candidates; the rest =
# missing conversations to put back.
# A stale member without a stamp (taken by a path that does not stamp) is stamped now and left for a later
# round: removal always needs a stamp older than the grace period. A missing conversation released since the
# reads began (presence.py `_RELEASE_IF` remembers when) is not put back: the read that found it held may predate
# its move away, and its slot may already serve another conversation.
# Returns {removed ids, restored ids, set size after}.
_HEAL = """
local set, stamps, released = KEYS[1], KEYS[1] .. ':taken_at', KEYS[1] .. ':released_at'
local cutoff, since, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = redis.call('TIME')
local at = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local removed, restored = {}, {}
for i = 4, 3 + n do
  local stamp = redis.call('ZSCORE', stamps, ARGV[i])
  if not stamp then
    if redis.call('SISMEMBER', set, ARGV[i]) == 1 then redis.call('ZADD', stamps, at, ARGV[i]) end
  elseif tonumber(stamp) < cutoff and redis.call('SREM', set, ARGV[i]) == 1 then
    redis.call('ZREM', stamps, ARGV[i])
    table.insert(removed, ARGV[i])
  end
end
for i = 4 + n, #ARGV do
  local gone = tonumber(redis.call('ZSCORE', released, ARGV[i]))
  if not (gone and gone >= since) and redis.call('SADD', set, ARGV[i]) == 1 then
    redis.call('ZADD', stamps, at, ARGV[i])
    table.insert(restored, ARGV[i])
  end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', stamps, '-inf', '(' .. cutoff)) do
  if redis.call('SISMEMBER', set, id) == 0 then redis.call('ZREM', stamps, id) end
end
return {removed, restored, redis.call('SCARD', set)}
"""

HELD_STATUSES = [Status.ASSIGNED.value, Status.SNOOZED.value]
_HOLDING = {"status": 1, "assignee_agent": 1, "channel_type": 1}


def _slot_of(doc: Doc) -> SlotKey | None:
    """The slot a stored conversation holds: its agent's on its channel type while assigned or snoozed (a team holds
    none)."""
    if doc.get("status") in HELD_STATUSES and doc.get("assignee_agent"):
        return (doc["assignee_agent"], doc["channel_type"])
    return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# The audit reads in slices so the routing it runs beside keeps its turn: 7,000 slot sets in one pipeline held
# the event loop ~60 ms, and the held conversations in one reply held the local database's single core ~200 ms
# (a routed message waited 227 ms behind them; bench/router_routing.py with the stall trace in docs/benchmarks.md).
AUDIT_BATCH = 500
AUDIT_PAUSE = 0.005
# The local database fetches every document a query matched before it answers, holding its global lock: so the
# rounds between full reads, which read the conversations stored since the last round (thousands in a busy
# half-minute), read them a window of the writers' time at a time — a window's range on the `changed` index fetches
# only its own documents, and every other command waits for one window, not for the whole read. Each window at
# least this long (domain/capacity.py `change_windows` decides how many).
SHORTEST_CHANGE_WINDOW = timedelta(seconds=1)


async def _paced(cursor: AsyncCursor[Doc]) -> AsyncIterator[Doc]:
    """The cursor's documents, with a pause after each `AUDIT_BATCH` of them (one batch of the cursor)."""
    read = 0
    async for doc in cursor:
        yield doc
        read += 1
        if read % AUDIT_BATCH == 0:
            await asyncio.sleep(AUDIT_PAUSE)


class CapacityAudit:
    def __init__(self, redis: Redis, prefix: str, db: AsyncDatabase[Doc]) -> None:
        self._redis = redis
        self._prefix = prefix
        self._conversations = db["conversations"]
        self._agents = db["agents"]
        self._counters = TabCounters(db)
        self._heal = redis.register_script(_HEAL)

    def _slot_key(self, tenant_id: str, login: str, channel_type: str) -> str:
        return f"{self._prefix}router:active:{tenant_id}:{login}:{channel_type}"

    async def server_time_ms(self) -> int:
        seconds, micros = await self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def tenants(self) -> list[str]:
        """Tenants with agents in the directory or with conversations (their inbox counters name them). Not a
        `distinct` over the conversations: the local database reads every matching conversation for it under its
        global lock, holding every other command off meanwhile."""
        with_agents = await self._agents.distinct("tenant_id")
        return sorted(set(with_agents).union(await self._counters.counted_tenants()))

    async def directory_logins(self, tenant_id: str) -> list[str]:
        return [doc["login"] async for doc in self._agents.find({"tenant_id": tenant_id}, projection={"login": 1})]

    async def held(self, tenant_id: str) -> dict[SlotKey, set[str]]:
        """What MongoDB says: per (agent, channel type) the conversations holding a slot."""
        return by_slot(await self.holders(tenant_id))

    async def holders(self, tenant_id: str) -> dict[str, SlotKey]:
        """Every conversation of the tenant holding a slot, with the slot (one read of each held conversation)."""
        found: dict[str, SlotKey] = {}
        for status in HELD_STATUSES:  # one query each, served by an index (the local database scans for `$in`)
            async for doc in _paced(self._conversations.find({"tenant_id": tenant_id, "status": status},
                                                             projection=_HOLDING, batch_size=AUDIT_BATCH)):
                if (slot := _slot_of(doc)) is not None:
                    found[doc["_id"]] = slot
        return found

    async def changed_since(self, tenant_id: str, since: datetime, until: datetime,
                            windows: int) -> dict[str, SlotKey | None]:
        """The tenant's conversations stored at or after `since` (by the writers' clocks), each with the slot it holds
        as last read (None: none). Read in up to `windows` windows of the writers' time from `since` towards `until`,
        the last one open-ended: a conversation stored again meanwhile moves to a later window, read after, so the
        latest read of it wins."""
        found: dict[str, SlotKey | None] = {}
        step = max(SHORTEST_CHANGE_WINDOW, (until - since) / windows)
        start: datetime | None = since
        while start is not None:
            end = start + step if start + step < until else None
            window = {"$gte": start} if end is None else {"$gte": start, "$lt": end}
            async for doc in self._conversations.find({"tenant_id": tenant_id, CHANGED_AT: window},
                                                      projection=_HOLDING):
                found[doc["_id"]] = _slot_of(doc)
            start = end
            if start is not None:  # routing first between two windows; none after the last
                await asyncio.sleep(AUDIT_PAUSE)
        return found

    async def holders_of(self, tenant_id: str, conversation_ids: list[str]) -> dict[str, SlotKey | None]:
        """These conversations as stored now, each with the slot it holds (None: none, or not stored)."""
        found: dict[str, SlotKey | None] = dict.fromkeys(conversation_ids)
        for start in range(0, len(conversation_ids), AUDIT_BATCH):
            # by `_id` alone: with the tenant in the filter too, the local database scans the collection
            async for doc in self._conversations.find({"_id": {"$in": conversation_ids[start:start + AUDIT_BATCH]}},
                                                      projection={**_HOLDING, "tenant_id": 1}):
                if doc["tenant_id"] == tenant_id:
                    found[doc["_id"]] = _slot_of(doc)
        return found

    async def slots(self, tenant_id: str, logins: list[str], channel_types: list[str]) -> dict[SlotKey, set[str]]:
        """What Redis says: the slot sets of these agents (pipelined, `AUDIT_BATCH` sets per round trip)."""
        keys = [(login, channel_type) for login in logins for channel_type in channel_types]
        found: dict[SlotKey, set[str]] = {}
        for start in range(0, len(keys), AUDIT_BATCH):
            chunk = keys[start:start + AUDIT_BATCH]
            pipe = self._redis.pipeline(transaction=False)
            for login, channel_type in chunk:
                pipe.smembers(self._slot_key(tenant_id, login, channel_type))
            for key, members in zip(chunk, await pipe.execute(), strict=True):
                if members:
                    found[key] = {_text(member) for member in members}
            await asyncio.sleep(AUDIT_PAUSE)  # routing first: the audit is not in a hurry
        return found

    async def heal(self, tenant_id: str, repairs: list[SlotRepair], cutoff_ms: int, read_since_ms: int) -> list[
            tuple[SlotRepair, list[str], list[str], int]]:
        """Apply the repairs (pipelined, each set atomically) decided from reads begun at `read_since_ms`; per
        repair: removed, restored, set size after."""
        pipe = self._redis.pipeline(transaction=False)
        for repair in repairs:
            await self._heal(keys=[self._slot_key(tenant_id, repair.login, repair.channel_type)],
                             args=[cutoff_ms, read_since_ms, len(repair.stale), *repair.stale, *repair.missing],
                             client=pipe)
        results = await pipe.execute() if repairs else []
        return [(repair, [_text(i) for i in removed], [_text(i) for i in restored], int(size))
                for repair, (removed, restored, size) in zip(repairs, results, strict=True)]

    async def try_lead(self, name: str, seconds: float) -> bool:
        """One replica per period does the work (the others skip): a lease that simply expires."""
        return bool(await self._redis.set(f"{self._prefix}router:upkeep:{name}", "1", nx=True,
                                          px=max(1, int(seconds * 1000))))
