"""Capacity reconciler timing on one process against the local servers (test profile).

Setup: one tenant, `--agents` agents in the directory, `--held` conversations assigned round-robin to them
(seeded straight into MongoDB), their slots in Redis with 1 % missing (undercount) and 1 % leaked members.
Measures one reconcile round (what `Upkeep.reconcile_tenant` does: read every slot set of every agent on every
channel type, read the held conversations, plan, heal with the Lua script) twice: the first heals the
undercount and stamps the unstamped leaks, the second removes those leaks.

Run:
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
  .venv/bin/python bench/router_reconcile.py --agents 1000 --held 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.domain.capacity import repairs
from parley_router.handlers.engine import CHANNEL_TYPES


async def seed(db: Any, redis: Any, prefix: str, agents: int, held: int) -> None:
    now = datetime.now(UTC)
    await db.agents.insert_many([{"_id": f"acme|a{i}", "tenant_id": "acme", "login": f"a{i}", "teams": []}
                                 for i in range(agents)])
    await db.conversations.insert_many([
        {"_id": f"c{i}", "tenant_id": "acme", "status": "assigned", "assignee_agent": f"a{i % agents}",
         "channel_type": "whatsapp", "priority": 0, "waiting_since": now} for i in range(held)])
    await db.conversations.create_index([("tenant_id", 1), ("status", 1), ("priority", -1),
                                         ("waiting_since", 1)])
    pipe = redis.pipeline(transaction=False)
    for i in range(held):
        if i % 100:
            pipe.sadd(f"{prefix}router:active:acme:a{i % agents}:whatsapp", f"c{i}")
    for i in range(held // 100):
        pipe.sadd(f"{prefix}router:active:acme:a{i % agents}:whatsapp", f"gone{i}")
    await pipe.execute()


async def reconcile_once(audit: CapacityAudit) -> str:
    started = time.perf_counter()
    read_since = await audit.server_time_ms()
    cutoff = read_since + 1000  # no takes in flight here: every stamped slot counts as old
    slots = await audit.slots("acme", await audit.directory_logins("acme"), CHANNEL_TYPES)
    slots_read = time.perf_counter()
    held = await audit.held("acme")
    held_read = time.perf_counter()
    results = await audit.heal("acme", repairs(slots, held), cutoff, read_since_ms=read_since)
    ended = time.perf_counter()
    elapsed = (ended - started) * 1000
    removed = sum(len(removed) for _, removed, _, _ in results)
    restored = sum(len(restored) for _, _, restored, _ in results)
    return (f"{elapsed:.0f} ms: slots {(slots_read - started) * 1000:.0f}, held {(held_read - slots_read) * 1000:.0f}, "
            f"plan and heal {(ended - held_read) * 1000:.0f} (sets checked {len(results)}, removed {removed}, "
            f"restored {restored})")


async def main(agents: int, held: int) -> None:
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
        audit = CapacityAudit(redis, prefix, db)
        print(f"agents={agents} channel types={len(CHANNEL_TYPES)} held={held}")
        print("round 1 (heal undercount, stamp leaks):", await reconcile_once(audit))
        print("round 2 (remove leaks):               ", await reconcile_once(audit))
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
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.held))
