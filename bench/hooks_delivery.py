"""Hooks benchmark: events on parley.conversations.events.v1 → a webhook subscription → a local receiver. Runs
parley-hooks as its own process in a fresh namespace, publishes N events over K conversation keys, and prints the
delivery rate, the latency from the event's time to its arrival (p50/p99), the hooks process's CPU per delivery
(in total, and above its idle cost, measured first), and whether every key arrived in order.

Run (test-profile infra up):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI
  .venv/bin/python bench/hooks_delivery.py --events 2000 --keys 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from local_server import free_port, serve_asgi

from parley_common.auth import issue_token
from parley_common.events.conversations import ConversationChanged
from parley_common.kafka import EventPublisher, drop_namespace_topics, ensure_topics, make_broker
from parley_common.mongo import mongo_client
from parley_common.topics import CONVERSATIONS_EVENTS

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-jwt-secret-of-at-least-32-bytes"
TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SAMPLE_S = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def event(user: str, step: int) -> ConversationChanged:
    now = datetime.now(UTC)
    return ConversationChanged(occurred_at=now, tenant_id="acme", correlation_id=f"b-{user}-{step}",
                               channel_id="wa-main", external_user_id=user, conversation_id=f"c-{user}",
                               change="note_added", status="queued", comment=str(step), changed_at=now)


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(600):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("parley-hooks did not get ready within a minute")


async def main(events: int, keys: int) -> None:
    bootstrap, mongo_uri = os.environ["PARLEY_KAFKA_BOOTSTRAP"], os.environ["PARLEY_MONGO_URI"]
    namespace = "bench" + uuid.uuid4().hex[:8]
    await ensure_topics(bootstrap, namespace)
    arrivals: list[tuple[float, dict[str, object]]] = []
    done = asyncio.Event()

    async def hook(request: Request) -> Response:
        arrivals.append((time.time(), json.loads(await request.body())))
        if len(arrivals) >= events:
            done.set()
        return Response(status_code=204)

    channels = REPO / ".run" / f"bench-channels-{namespace}.yaml"
    channels.parent.mkdir(exist_ok=True)
    channels.write_text("channels:\n  - {id: wa-main, type: whatsapp, tenant_id: acme, phone_number_id: '1', "
                        "access_token: t, app_secret: s, verify_token: v}\n")
    port = free_port()
    env = {**os.environ, "PARLEY_NAMESPACE": namespace, "PARLEY_JWT_SECRET": SECRET,
           "PARLEY_CHANNELS_FILE": str(channels), "PARLEY_HOOKS_PORT": str(port), "PARLEY_LOG_JSON": "true",
           "PARLEY_HOOKS_ALLOW_PRIVATE_TARGETS": "true", "PARLEY_HOOKS_ALLOW_PLAIN_HTTP": "true"}
    hooks = await asyncio.create_subprocess_exec(str(REPO / ".venv/bin/parley-hooks"), env=env,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manager = {"Authorization": f"Bearer {issue_token(SECRET, 'acme', 'sam', ['manager'])}"}
    broker = make_broker(bootstrap, "bench-publisher")
    try:
        async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_ready(client)
            created = await client.post("/v1/subscriptions", headers=manager, json={
                "url": f"{receiver}/hook", "event_types": ["parley.conversation.changed"]})
            created.raise_for_status()
            await broker.connect()
            publisher = EventPublisher(broker, namespace)
            users = [f"user{n}" for n in range(keys)]
            order = {user: [] for user in users}
            idle_from, idle_cpu_from = time.time(), cpu_seconds(hooks.pid)
            await asyncio.sleep(IDLE_SAMPLE_S)  # the process's own cost with nothing to do (its six consumers)
            idle_rate = (cpu_seconds(hooks.pid) - idle_cpu_from) / (time.time() - idle_from)
            cpu_before, started = cpu_seconds(hooks.pid), time.time()
            for step in range(events // keys):
                for user in users:
                    one = event(user, step)
                    order[user].append(str(one.event_id))
                    await publisher.publish(one, CONVERSATIONS_EVENTS)
            published = time.time()
            await asyncio.wait_for(done.wait(), 600)
            took, cpu = time.time() - started, cpu_seconds(hooks.pid) - cpu_before
    finally:
        await broker.stop()
        hooks.terminate()
        await asyncio.wait_for(hooks.wait(), 30)
        await drop_namespace_topics(bootstrap, namespace)
        client_db = mongo_client(mongo_uri, "bench")
        await client_db.drop_database(f"parley_hooks_{namespace}")
        await client_db.close()
        channels.unlink(missing_ok=True)

    report(arrivals, order, took, published - started, cpu, idle_rate)

def report(arrivals: list[tuple[float, dict[str, object]]], order: dict[str, list[str]], took: float,
           publishing: float, cpu: float, idle_rate: float) -> None:
    latencies = sorted((arrived - datetime.fromisoformat(str(body["time"])).timestamp()) * 1000
                       for arrived, body in arrivals)
    arrived_order: dict[str, list[str]] = {}
    for _, body in arrivals:
        data = body["data"]
        assert isinstance(data, dict)
        arrived_order.setdefault(str(data["external_user_id"]), []).append(str(body["id"]))
    in_order = all(arrived_order.get(user) == ids for user, ids in order.items())
    print(f"{len(arrivals)} deliveries over {len(order)} keys in {took:.1f}s ({len(arrivals) / took:.0f}/s; publishing "
          f"took {publishing:.1f}s); latency p50 {statistics.median(latencies):.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.0f} ms; hooks CPU {cpu:.1f}s = "
          f"{cpu / len(arrivals) * 1000:.2f} ms per delivery, {(cpu - idle_rate * took) / len(arrivals) * 1000:.2f} ms "
          f"above its idle cost ({idle_rate * 100:.0f} % of a core); every key in order: {in_order}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.keys))
