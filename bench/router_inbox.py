"""The console's first screen against the router, on a tenant whose conversations all wait in the queue.

Setup: `--queued` new customers' conversations as the router opens them with no agent online (queued,
unanswered, waiting), stored through the router's document mapping (bulk insert, as bench/router_routing.py
seeds), their last activity spread over the last `--spread-minutes` (webhooks arriving in a burst).

Then, `--rounds` times each, as a manager (`boss`) through the router's HTTP app:
1. the Inbox's first call (`GET /v1/conversations?status=queued&limit=50`, the console's "Queued" tab);
2. the Supervisor's queue (`status=queued&sort=waiting&limit=100`);
3. the tab counts the live stream pushes on connect (`tab_counts` with the stream's cap);
4. the first screen as the console asks it: the Inbox call while the stream counts (both at once): the
   Inbox call's own time, and the time until both answered.

Run (fresh servers, test profile):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
  .venv/bin/python bench/router_inbox.py --queued 10000 --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from bench.router_routing import drop_bench_stores, summary
from parley_common.auth import Principal, Role, issue_token
from parley_common.kafka import ensure_topics
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_router.adapters.conversations import to_doc
from parley_router.app import create_app
from parley_router.domain.conversation import open_conversation
from parley_router.handlers.engine import Engine
from parley_router.handlers.http_conversations import tab_counts
from parley_router.handlers.live import COUNTS_CAP
from parley_router.settings import RouterSettings

TENANT = "bench"


async def seed(db: Any, queued: int, spread: timedelta) -> None:
    started, now = time.perf_counter(), datetime.now(UTC)
    step = spread / max(1, queued)
    for start in range(0, queued, 5000):
        convs, pointers = [], []
        for n in range(start, min(queued, start + 5000)):
            conv = open_conversation(f"q{n}", TENANT, "wa-main", "whatsapp", f"c{n:08d}", now - step * n)
            convs.append(to_doc(conv))
            pointers.append({"_id": f"{TENANT}|wa-main|c{n:08d}", "conversation_id": conv.id, "tenant_id": TENANT})
        await db["conversations"].insert_many(convs, ordered=False)
        await db["open_conversations"].insert_many(pointers, ordered=False)
    print(f"seeded {queued} queued conversations in {time.perf_counter() - started:.1f} s")


async def timed(label: str, rounds: int, call: Callable[[], Awaitable[object]]) -> None:
    durations = []
    for _ in range(rounds):
        t = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - t)
    print(summary(label, durations))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--spread-minutes", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    namespace = "benchinbox" + uuid.uuid4().hex[:6]
    channels = Path(tempfile.mkdtemp()) / "channels.yaml"
    channels.write_text("channels: []\n")  # these queries need no channel (brands come from the channel file)
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)), namespace=namespace, log_level="WARNING",
                          channels_file=channels)
    await ensure_topics(infra.kafka_bootstrap, namespace)
    app = create_app(RouterSettings(infra=infra, sweep_interval_seconds=3600))
    mongo = mongo_client(infra.mongo_uri, "bench")
    db = mongo[infra.database_name("router")]
    manager = Principal(tenant_id=TENANT, login="boss", roles=frozenset({Role.MANAGER}))
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            engine: Engine = app.state.engine
            await seed(db, args.queued, timedelta(minutes=args.spread_minutes))
            headers = {"Authorization": f"Bearer {issue_token(app.state.jwt_secret, TENANT, 'boss', ['manager'])}"}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r",
                                         headers=headers, timeout=120) as client:

                async def get(params: dict[str, Any]) -> None:
                    response = await client.get("/v1/conversations", params=params)
                    assert response.status_code == 200, response.text

                def inbox() -> Awaitable[None]:
                    return get({"status": "queued", "limit": 50})

                def stream_counts() -> Awaitable[dict[str, int]]:
                    return tab_counts(engine, manager, frozenset(), cap=COUNTS_CAP)

                async def inbox_while_counting() -> None:
                    counting = asyncio.ensure_future(stream_counts())  # the stream connects with the first call
                    t = time.perf_counter()
                    await inbox()
                    waited.append(time.perf_counter() - t)
                    await counting

                await timed("inbox, Queued tab (manager, 50)", args.rounds, inbox)
                await timed("supervisor queue (sort=waiting, 100)", args.rounds,
                            lambda: get({"status": "queued", "sort": "waiting", "limit": 100}))
                await timed(f"stream's tab counts (cap {COUNTS_CAP})", args.rounds, stream_counts)
                waited: list[float] = []
                await timed("first screen: inbox and counts both answered", args.rounds, inbox_while_counting)
                print(summary("first screen: inbox call while the stream counts", waited))
    finally:
        await drop_bench_stores(mongo, infra)


if __name__ == "__main__":
    asyncio.run(main())
