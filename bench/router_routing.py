"""Router benchmark on one process against the local servers (test profile).

Setup: `--agents` agents online in one round-robin team (capacity 5 each; the worst case for dispatch, which
reads live state of every candidate) and `--open` open bot conversations seeded straight into the database
(bulk insert) with the inbound entry of the message that opened each, their last activity spread over the past
week, so queries run against realistic collections.

1. handler: new customers' `MessageReceived` given straight to the inbound handler (open → route → offer →
   publish), sequentially: messages/s and per-message p50/p99.
2. end to end, burst: `--burst` new customers' messages published to Kafka at once while the router app
   consumes them (batches, concurrent conversations, coalesced offers): routed msg/s on one process, and
   latency from publishing `MessageReceived` to reading the `offered` ConversationChanged back from Kafka.
   The load (publisher and reader) runs in a process of its own: the CPU time per routed message of the
   router's process, of the load and of each local server shows where the time goes.
3. end to end at a rate: `--count` messages at `--rate` msg/s: the latency under a steady load.
4. inbox: `GET /v1/conversations?limit=50` as a manager and as an agent, p50/p99.
5. the periodic and on-demand queries on the conversations, each timed on its own (p50/p99): the sweep's due
   conversations, the queue, the capacity audit's tenants and held conversations, an agent's conversations, a
   customer's history, the supervisors' figures of the last day.

Run:
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
  export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
  .venv/bin/python bench/router_routing.py --agents 1000 --open 100000 --burst 2000 --count 1000 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from parley_common.auth import issue_token
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, drop_namespace_topics, ensure_topics, make_broker
from parley_common.mongo import mongo_client
from parley_common.service import FREEZE_HEAP
from parley_common.settings import InfraSettings
from parley_common.topics import CONVERSATIONS_EVENTS, INBOUND_MESSAGES
from parley_router.adapters.conversations import to_doc
from parley_router.adapters.directory import AgentSpec, TeamSpec
from parley_router.app import create_app
from parley_router.domain.assignment import Presence
from parley_router.domain.conversation import Assignee, AssigneeKind, Status, open_conversation
from parley_router.domain.timeline import EntryKind, inbound_entry_id, tiebreak_rank
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbound import InboundHandler
from parley_router.settings import RouterSettings

TENANT = "bench"
SERVER_PIDS = [Path(__file__).resolve().parents[1] / f".run/test/{name}.pid" for name in ("mongo", "kafka", "redis")]


def message(n: int, prefix: str) -> MessageReceived:
    user = f"{prefix}{n:08d}"
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id=TENANT, correlation_id="bench", channel_id="wa-main", external_user_id=user,
        channel_type="whatsapp", customer=Customer(wa_id=user), provider_message_id=f"wamid.{uuid.uuid4()}",
        provider_timestamp=now, received_at=now, parts=(TextPart(text="hello, I need help"),))


def server_cpu_seconds(pid_files: list[Path]) -> dict[str, float]:
    """CPU time used so far by the local servers and their children (noida-db runs under a launcher), from
    /proc: shows where a routed message's cost lies."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_of(pid: str) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / ticks + sum(cpu_of(child) for child in children)

    return {pid_file.stem: cpu_of(pid_file.read_text().strip()) for pid_file in pid_files if pid_file.exists()}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: no samples"
    return (f"{label}: n={len(values)} p50={pct(values, 0.5):.1f} ms p99={pct(values, 0.99):.1f} ms "
            f"mean={statistics.mean(values) * 1000:.1f} ms")


async def seed(engine: Engine, db: Any, agents: int, open_count: int) -> None:
    directory, presence = engine.stores.directory, engine.stores.presence
    await directory.put_team(TENANT, "default", TeamSpec(strategy="round_robin"))
    for i in range(agents):
        await directory.put_agent(TENANT, f"agent{i:04d}", AgentSpec(teams=["default"], default_capacity=5))
    for i in range(agents):
        await presence.heartbeat(TENANT, f"agent{i:04d}", Presence.ONLINE)
    seconds = await seed_open_conversations(db, TENANT, "wa-main", "whatsapp", "default", open_count)
    print(f"seeded {agents} agents online and {open_count} open conversations (with their first message) in "
          f"{seconds:.1f} s")


async def seed_open_conversations(db: Any, tenant_id: str, channel_id: str, channel_type: str, team_id: str,
                                  count: int, prefix: str = "seed") -> float:
    """`count` open bot conversations of `team_id` straight into the router's database `db` (bulk inserts, not
    the router's API: a benchmark's setup, never a test's), each with its open-conversation pointer and the
    inbound timeline entry of the message that opened it, their last activity spread over the past week. The
    customers are `<prefix><8 digits>`. Returns the seconds it took."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    for start in range(0, count, 5000):
        convs, pointers, entries = [], [], []
        for n in range(start, min(count, start + 5000)):
            user = f"{prefix}{n:08d}"
            conv = open_conversation(f"{prefix}{n}", tenant_id, channel_id, channel_type, user,
                                     now - timedelta(seconds=6 * n))  # 100k spread over the last week
            conv = conv.__class__(**{**conv.__dict__, "status": Status.BOT,
                                     "assignee": Assignee(AssigneeKind.BOT, "bot"), "team_id": team_id})
            convs.append(to_doc(conv))
            pointers.append({"_id": f"{tenant_id}|{channel_id}|{user}", "conversation_id": conv.id,
                             "tenant_id": tenant_id})
            entry_id = inbound_entry_id(f"wamid.{prefix}{n}")  # the message that opened it
            entries.append({"_id": f"{conv.id}|{entry_id}", "tenant_id": tenant_id, "conversation_id": conv.id,
                            "entry_id": entry_id, "kind": EntryKind.INBOUND.value, "at": conv.opened_at,
                            "rank": tiebreak_rank(EntryKind.INBOUND), "provider_message_id": f"wamid.{prefix}{n}",
                            "direction": "inbound", "text": "hello", "sender": "customer", "blocked": False})
        await db["conversations"].insert_many(convs, ordered=False)
        await db["open_conversations"].insert_many(pointers, ordered=False)
        await db["timeline"].insert_many(entries, ordered=False)
    return time.perf_counter() - started


async def handler_phase(engine: Engine, count: int) -> None:
    handler = InboundHandler(engine)
    durations = []
    started = time.perf_counter()
    for n in range(count):
        t = time.perf_counter()
        await handler.handle(message(n, "h"))
        durations.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    print(f"handler, sequential: {count / elapsed:.0f} msg/s; " + summary("per message", durations))


async def _load(bootstrap: str, namespace: str, count: int, rate: float | None, prefix: str) -> dict[str, Any]:
    """The load, in its own process: publishes `count` new customers' messages and reads the `offered` events
    back; the latencies, the changes seen and its own CPU time."""
    topic = CONVERSATIONS_EVENTS.name(namespace)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"bench-{uuid.uuid4().hex}")
    broker = make_broker(bootstrap, "bench-load")
    await broker.start()
    await consumer.start()
    await consumer.seek_to_end()
    publisher = EventPublisher(broker, namespace)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    seen: dict[str, int] = {}

    async def produce() -> None:
        for start in range(0, count, 1 if rate else 500):
            events = [message(n, prefix) for n in range(start, min(count, start + (1 if rate else 500)))]
            for event in events:
                sent[event.external_user_id] = time.perf_counter()
            await asyncio.gather(*(publisher.publish(event, INBOUND_MESSAGES) for event in events))
            if rate:
                await asyncio.sleep(1 / rate)

    cpu_before = time.process_time()
    producer = asyncio.create_task(produce())
    deadline = time.perf_counter() + count / (rate or 1000) + 300
    while len(latencies) < count and time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=200)
        now = time.perf_counter()
        for records in batch.values():
            for record in records:
                event = CONVERSATIONS_EVENTS.parse(record.value)
                seen[event.change] = seen.get(event.change, 0) + 1
                if event.change == "offered" and event.external_user_id in sent:
                    latencies.append(now - sent.pop(event.external_user_id))
    await producer
    cpu = time.process_time() - cpu_before
    await consumer.stop()
    await broker.stop()
    return {"latencies": latencies, "seen": seen, "cpu": cpu}


def _load_process(bootstrap: str, namespace: str, count: int, rate: float | None, prefix: str,
                  results: Connection) -> None:
    results.send(asyncio.run(_load(bootstrap, namespace, count, rate, prefix)))


async def end_to_end(infra: InfraSettings, count: int, rate: float | None, prefix: str) -> None:
    """`rate` None: a burst, published as fast as the producer goes (the consumer's throughput). The load runs
    in a process of its own, so this process's CPU time is the router's alone."""
    receiving, sending = multiprocessing.Pipe(duplex=False)
    load = multiprocessing.get_context("spawn").Process(
        target=_load_process, args=(infra.kafka_bootstrap, infra.namespace, count, rate, prefix, sending))
    started = time.perf_counter()
    cpu_before, servers_before = time.process_time(), server_cpu_seconds(SERVER_PIDS)
    load.start()
    outcome = await asyncio.to_thread(receiving.recv)
    elapsed = time.perf_counter() - started
    cpu = {"router (this process)": time.process_time() - cpu_before, "load (its own process)": outcome["cpu"]}
    cpu.update({name: used - servers_before.get(name, used) for name, used in server_cpu_seconds(SERVER_PIDS).items()})
    await asyncio.to_thread(load.join)
    latencies = outcome["latencies"]
    label = f"at {rate:.0f} msg/s offered" if rate else "burst"
    print(f"end to end {label}: {len(latencies)}/{count} routed in {elapsed:.1f} s "
          f"({len(latencies) / elapsed:.0f} msg/s); " + summary("MessageReceived → offered", latencies)
          + f"; changes read back: {outcome['seen']}")
    routed = max(1, len(latencies))
    print("  CPU per routed message: " + ", ".join(f"{name} {seconds / routed * 1000:.2f} ms"
                                                 for name, seconds in cpu.items()))


async def inbox_phase(client: httpx.AsyncClient, secret: str, rounds: int) -> None:
    for login, roles in (("boss", ["manager"]), ("agent0001", ["agent"])):
        headers = {"Authorization": f"Bearer {issue_token(secret, TENANT, login, roles)}"}
        durations = []
        for _ in range(rounds):
            t = time.perf_counter()
            response = await client.get("/v1/conversations", params={"limit": 50, "status": "bot"},
                                        headers=headers)
            durations.append(time.perf_counter() - t)
            assert response.status_code == 200, response.text
        print(summary(f"inbox list ({roles[0]}, 50 per page)", durations))


async def queries_phase(engine: Engine, rounds: int) -> None:
    repo, audit, now = engine.stores.conversations, engine.stores.audit, datetime.now(UTC)
    last_day = {"$gte": now - timedelta(days=1), "$lt": now}

    async def period() -> None:
        for field in ("opened_at", "closed_at"):
            async for _ in repo.stream({"tenant_id": TENANT, field: last_day}, [(field, 1)], 1000):
                pass

    queries = {"sweep (due conversations)": lambda: repo.due(now), "queue": lambda: repo.queued(TENANT, 50),
               "capacity audit: tenants": audit.tenants, "capacity audit: held": lambda: audit.held(TENANT),
               "an agent's conversations": lambda: repo.active_of_agent(TENANT, "agent0001"),
               "a customer's history": lambda: repo.of_contact(TENANT, "seed-contact", 20),
               "period figures, last day": period}
    for label, query in queries.items():
        durations = []
        for _ in range(rounds):
            t = time.perf_counter()
            await query()
            durations.append(time.perf_counter() - t)
        print(summary(label, durations))


async def drop_bench_stores(mongo: Any, infra: InfraSettings) -> None:
    """What a bench run made: the router's database and the namespace's topics."""
    await mongo.drop_database(infra.database_name("router"))
    await mongo.close()
    await drop_namespace_topics(infra.kafka_bootstrap, infra.namespace)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--burst", type=int, default=2000, help="messages published at once: throughput")
    parser.add_argument("--inbox-rounds", type=int, default=200)
    parser.add_argument("--query-rounds", type=int, default=20)
    args = parser.parse_args()
    namespace = "benchrouter" + uuid.uuid4().hex[:6]
    channels = Path(tempfile.mkdtemp()) / "channels.yaml"
    channels.write_text(f"""channels:
  - {{id: wa-main, type: whatsapp, tenant_id: {TENANT}, phone_number_id: pn-bench, access_token: token,
     app_secret: secret, verify_token: verify}}
""")  # the router dead-letters a message of a channel it does not know
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)), namespace=namespace, log_level="WARNING",
                          channels_file=channels)
    await ensure_topics(infra.kafka_bootstrap, namespace)
    # a long presence TTL: seeding takes longer than a real heartbeat interval
    app = create_app(RouterSettings(infra=infra, sweep_interval_seconds=3600, presence_ttl_seconds=3600))
    setattr(app.state, FREEZE_HEAP, True)  # as `serve` does in the service's own process
    mongo = mongo_client(infra.mongo_uri, "bench")
    db = mongo[infra.database_name("router")]
    try:
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            engine: Engine = app.state.engine
            await seed(engine, db, args.agents, args.open)
            await handler_phase(engine, min(args.count, 300))
            capacity = args.agents * 5 - 300  # every routed conversation holds a slot: more would only queue
            await end_to_end(infra, min(args.burst, capacity // 2), None, "b")
            await end_to_end(infra, min(args.count, capacity // 2), args.rate, "e")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
                await inbox_phase(client, app.state.jwt_secret, args.inbox_rounds)
            await queries_phase(engine, args.query_rounds)
    finally:
        await drop_bench_stores(mongo, infra)


if __name__ == "__main__":
    asyncio.run(main())
