"""Capacity reconciler timing on one process against the local servers (test profile).

Setup: one tenant, `--agents` agents in the directory, `--held` conversations assigned round-robin to them
(seeded straight into MongoDB with the router's indexes), their slots in Redis with 1 % missing (undercount) and
1 % leaked members. Times the router's own round (`Upkeep.reconcile_tenant`: every slot set of every agent on every
channel type, the held conversations, plan, heal with the Lua script), each phase apart:

1. a full round (every held conversation read): heals the undercount, stamps the unstamped leaks;
2. a full round again: removes those leaks;
3. `--changed` conversations stored since (their `changed_at` moved, as the router's saves move it), then a round
   between full reads: reads only those (and again any it would repair).

Run:
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
  .venv/bin/python bench/router_reconcile.py --agents 1000 --held 5000 --changed 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from parley_common.logging import configure_logging
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.adapters.conversations import CHANGED_AT, ConversationRepository
from parley_router.adapters.directory import Directory
from parley_router.adapters.directory_cache import DirectoryCache
from parley_router.handlers.engine import CHANNEL_TYPES
from parley_router.handlers.upkeep import Upkeep


class DirectoryOnly:
    """What a reconcile round asks of the router's engine: the agents' capacities, and a dispatch of the queue once
    slots were freed (there is no queue here)."""

    def __init__(self, db: Any) -> None:
        self.cache = DirectoryCache(Directory(db))

    async def dispatch(self, tenant_id: str) -> None:
        return None


async def seed(db: Any, redis: Any, prefix: str, agents: int, held: int) -> None:
    now = datetime.now(UTC)
    await ConversationRepository(db).ensure_indexes()
    await db.agents.insert_many([{"_id": f"acme|a{i}", "tenant_id": "acme", "login": f"a{i}", "teams": []}
                                 for i in range(agents)])
    await db.conversations.insert_many([
        {"_id": f"c{i}", "tenant_id": "acme", "status": "assigned", "assignee_agent": f"a{i % agents}",
         "channel_type": "whatsapp", "priority": 0, "waiting_since": now, "archived": False, "blocked": False,
         "last_activity_at": now, "opened_at": now, CHANGED_AT: now - timedelta(hours=1)} for i in range(held)])
    pipe = redis.pipeline(transaction=False)
    for i in range(held):
        if i % 100:
            pipe.sadd(f"{prefix}router:active:acme:a{i % agents}:whatsapp", f"c{i}")
    for i in range(held // 100):
        pipe.sadd(f"{prefix}router:active:acme:a{i % agents}:whatsapp", f"gone{i}")
    await pipe.execute()


class TimedAudit(CapacityAudit):
    """The router's audit, with the time of each of its reads kept."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.phases: dict[str, float] = {}

    async def _timed(self, phase: str, read: Any) -> Any:
        started = time.perf_counter()
        try:
            return await read
        finally:
            self.phases[phase] = self.phases.get(phase, 0.0) + (time.perf_counter() - started) * 1000

    async def slots(self, *args: Any) -> Any:
        return await self._timed("slots", super().slots(*args))

    async def holders(self, *args: Any) -> Any:
        return await self._timed("every held conversation", super().holders(*args))

    async def changed_since(self, *args: Any) -> Any:
        return await self._timed("changed since", super().changed_since(*args))

    async def holders_of(self, *args: Any) -> Any:
        return await self._timed("read again", super().holders_of(*args))

    async def heal(self, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("heal", super().heal(*args, **kwargs))


async def timed_round(upkeep: Upkeep, audit: TimedAudit) -> str:
    audit.phases.clear()
    started = time.perf_counter()
    healed = await upkeep.reconcile_tenant("acme")
    elapsed = (time.perf_counter() - started) * 1000
    phases = ", ".join(f"{phase} {ms:.0f}" for phase, ms in audit.phases.items())
    return f"{elapsed:.0f} ms: {phases} (removed {healed.removed}, restored {healed.restored})"


async def main(agents: int, held: int, changed: int) -> None:
    configure_logging("bench", "ERROR")  # the rounds' warnings name every conversation healed
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)),
                          kafka_bootstrap=os.environ["PARLEY_KAFKA_BOOTSTRAP"],
                          mongo_uri=os.environ["PARLEY_MONGO_URI"], redis_url=os.environ["PARLEY_REDIS_URL"],
                          namespace="b" + uuid.uuid4().hex[:10])
    client = mongo_client(infra.mongo_uri, "bench")
    db = client[infra.database_name("router")]
    redis = redis_client(infra.redis_url)
    prefix = infra.redis_prefix()
    try:
        await seed(db, redis, prefix, agents, held)
        audit = TimedAudit(redis, prefix, db)
        upkeep = Upkeep(DirectoryOnly(db), audit, grace_seconds=0, full_audit_seconds=0)  # type: ignore[arg-type]
        print(f"agents={agents} channel types={len(CHANNEL_TYPES)} held={held}")
        print("round 1, full (heal undercount, stamp leaks):", await timed_round(upkeep, audit))
        print("round 2, full (remove leaks):               ", await timed_round(upkeep, audit))
        await db.conversations.update_many({"_id": {"$in": [f"c{i}" for i in range(changed)]}},
                                           {"$set": {CHANGED_AT: datetime.now(UTC)}})
        upkeep.full_audit_seconds = 3600
        print(f"round 3, {changed} stored since:           ", await timed_round(upkeep, audit))
    finally:
        await client.drop_database(infra.database_name("router"))
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--held", type=int, default=5000)
    parser.add_argument("--changed", type=int, default=300, help="conversations stored between the rounds 2 and 3")
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.held, args.changed))
