"""The console's first screen against the router, on a tenant whose conversations all wait in the queue.

Setup: `--queued` new customers' conversations as the router opens them with no agent online (queued,
unanswered, waiting), stored through the router's document mapping (bulk insert, as bench/router_routing.py
seeds), their last activity spread over the last `--spread-minutes` (webhooks arriving in a burst). They are
stored around the router, so its tab counters are then built by the counters' repair (what an upgrade to the
counters does once: a recount), timed too.

The router and the console then serve over real HTTP (uvicorn, in this process); `--rounds` times each, as a
manager (`boss`):
1. the Inbox's first call (`GET /v1/conversations?status=queued&limit=50`, the console's "Queued" tab);
2. the Supervisor's queue (`status=queued&sort=waiting&limit=100`);
3. the tab counts the live stream pushes on connect (summed from the tab counters);
4. both at once, as the console asks them when it opens: the Inbox call's own time, and until both answered;
5. with `--browser`: the console (its own process, `parley-console`) opened in Debian's chromium (Playwright)
   until the Queued tab shows its first conversation and its count (a new page each round, the app's files
   cached after the first).

Run (fresh servers, test profile):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
  .venv/bin/python bench/router_inbox.py --queued 10000 --rounds 10 --browser
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from fastapi import FastAPI
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
from parley_router.settings import RouterSettings

CHROMIUM = "/usr/bin/chromium"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` over HTTP on a free local port (with its lifespan) until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it did not start
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def in_browser(console: str, token: str, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds from opening the console until the Queued tab shows its first conversation and its count, and
    until the app's page was loaded (DOMContentLoaded: before any API call)."""
    from playwright.async_api import async_playwright

    durations, loaded = [], []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                   args=["--no-sandbox", "--disable-gpu"])
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        for _ in range(rounds):
            page = await context.new_page()
            started = time.perf_counter()
            await page.goto(f"{console}/#token={token}")
            await page.locator("#conversation-list li.item").first.wait_for(timeout=30_000)
            # a dash until the stream pushed the counts (a locator, not a script: the console's CSP forbids eval)
            await page.locator("#tab-queued .count").filter(has_text=re.compile(r"^[0-9]+$")).wait_for(
                timeout=30_000)
            durations.append(time.perf_counter() - started)
            loaded.append(await page.evaluate(
                "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd") / 1000)
            await page.close()
        await browser.close()
    return durations, loaded


@contextlib.asynccontextmanager
async def console_process(infra: InfraSettings, router_url: str) -> AsyncIterator[str]:
    """The console as its own process (as deployed: its proxying does not share the router's event loop)."""
    port, nowhere = free_port(), f"http://127.0.0.1:{free_port()}"  # the other services: not running here
    env = {**os.environ, "PARLEY_JWT_SECRET": infra.jwt_secret.get_secret_value(), "PARLEY_LOG_LEVEL": "WARNING",
           "PARLEY_CHANNELS_FILE": str(infra.channels_file), "PARLEY_CONSOLE_PORT": str(port),
           "PARLEY_CONSOLE_ROUTER_URL": router_url, "PARLEY_CONSOLE_CONTACTS_URL": nowhere,
           "PARLEY_CONSOLE_OUTBOUND_URL": nowhere, "PARLEY_CONSOLE_MEDIA_URL": nowhere}
    process = await asyncio.create_subprocess_exec(str(Path(sys.executable).parent / "parley-console"), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def console_in_browser(infra: InfraSettings, router_url: str, token: str, rounds: int) -> None:
    async with console_process(infra, router_url) as console_url:
        shown, loaded = await in_browser(console_url, token, rounds)
        print(summary("console in chromium: the app's page loaded (DOMContentLoaded)", loaded))
        print(summary("console in chromium: Queued tab with its first row and count", shown))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--spread-minutes", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--browser", action="store_true", help="also time the console opened in chromium")
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
        async with serving(app) as router_url:
            engine: Engine = app.state.engine
            await seed(db, args.queued, timedelta(minutes=args.spread_minutes))
            t = time.perf_counter()
            await app.state.upkeep.repair_tab_counts()
            print(f"tab counters built from a recount of {args.queued} conversations in "
                  f"{time.perf_counter() - t:.2f} s (once, as on an upgrade)")
            token = issue_token(app.state.jwt_secret, TENANT, "boss", ["manager"])
            async with httpx.AsyncClient(base_url=router_url, headers={"Authorization": f"Bearer {token}"},
                                         timeout=120) as client:

                async def get(params: dict[str, Any]) -> None:
                    response = await client.get("/v1/conversations", params=params)
                    assert response.status_code == 200, response.text

                def inbox() -> Awaitable[None]:
                    return get({"status": "queued", "limit": 50})

                def stream_counts() -> Awaitable[dict[str, int]]:
                    return tab_counts(engine, manager, frozenset())

                async def inbox_while_counting() -> None:
                    counting = asyncio.ensure_future(stream_counts())  # the stream connects with the first call
                    t = time.perf_counter()
                    await inbox()
                    waited.append(time.perf_counter() - t)
                    await counting

                await timed("inbox, Queued tab (manager, 50)", args.rounds, inbox)
                await timed("supervisor queue (sort=waiting, 100)", args.rounds,
                            lambda: get({"status": "queued", "sort": "waiting", "limit": 100}))
                await timed("stream's tab counts (from the counters)", args.rounds, stream_counts)
                waited: list[float] = []
                await timed("first screen's calls: inbox and counts both answered", args.rounds,
                            inbox_while_counting)
                print(summary("first screen's calls: inbox call while the stream counts", waited))
            if args.browser:
                await console_in_browser(infra, router_url, token, args.rounds)
    finally:
        await drop_bench_stores(mongo, infra)


if __name__ == "__main__":
    asyncio.run(main())
