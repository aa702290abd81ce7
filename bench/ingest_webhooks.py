"""Benchmark: signed WhatsApp webhooks → ingest → Kafka acks (acks=all), against the bare-endpoint ceiling.

Starts one ingest process (the chosen ASGI server) on the test-profile Kafka, MongoDB and Redis in a fresh namespace,
posts pre-signed payloads (70 % single messages, 30 % batches of 10) from `--concurrency` connections for
`--seconds`, then the same against a bare FastAPI endpoint that only answers 200. Prints requests/s, events/s,
p50/p99 latency and the ratio, and checks that Kafka holds exactly the accepted events.

    .venv/bin/python bench/ingest_webhooks.py --server uvicorn-httptools --seconds 15 --concurrency 32
    .venv/bin/python bench/ingest_webhooks.py --seconds 15 --concurrency 4 --rate 100   # a quiet moment's pace
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.mongo import mongo_client
from parley_common.topics import INBOUND_MESSAGES

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "200000000000002"
SERVERS = {
    "uvicorn-httptools": ["-m", "uvicorn", "--loop", "uvloop", "--http", "httptools"],
    "uvicorn-h11": ["-m", "uvicorn", "--loop", "asyncio", "--http", "h11"],
    "granian": ["-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--no-ws"],
}


def infra_env() -> dict[str, str]:
    keys = ("PARLEY_KAFKA_BOOTSTRAP", "PARLEY_MONGO_URI", "PARLEY_REDIS_URL")
    if all(os.environ.get(key) for key in keys):
        return {key: os.environ[key] for key in keys}
    infra = [sys.executable, str(REPO / "deploy/local/infra.py")]
    subprocess.run([*infra, "start", "--profile", "test"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([*infra, "env", "--profile", "test"], check=True, capture_output=True, text=True).stdout
    pairs = (line.removeprefix("export ").partition("=") for line in out.splitlines())
    return {key: value.strip("'") for key, _, value in pairs}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def message(index: int, sender: int) -> dict[str, object]:
    return {"from": f"4477009{sender:05d}", "from_user_id": f"GB.{sender:020d}", "id": f"wamid.BENCH{index:09d}",
            "timestamp": "1795939200", "type": "text", "text": {"body": f"Hello, where is parcel {index}?"}}


def payloads(count: int, seed: int, senders: int) -> list[tuple[bytes, dict[str, str], int]]:
    """Pre-signed bodies: every message id unique so de-duplication never hides work."""
    rng, out, index = random.Random(seed), [], 0
    for _ in range(count):
        size = 10 if rng.random() < 0.3 else 1
        messages = [message(index + i, rng.randrange(senders)) for i in range(size)]
        index += size
        contacts = [{"profile": {"name": "Bench User"}, "wa_id": m["from"], "user_id": m["from_user_id"]}
                    for m in messages]
        value = {"messaging_product": "whatsapp", "contacts": contacts, "messages": messages,
                 "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID}}
        body = json.dumps({"object": "whatsapp_business_account",
                           "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        out.append((body, {"content-type": "application/json", "x-hub-signature-256": f"sha256={signature}"}, size))
    return out


def start_server(server: str, target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, *SERVERS[server]]
    if server == "granian":
        args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        args += ["--factory", target] if target.endswith("app_from_env") else [target]
    else:
        args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
        args += ["--factory", target] if target.endswith("app_from_env") else [target]
    return subprocess.Popen(args, env=env, cwd=REPO / "bench", stdout=subprocess.DEVNULL)


async def wait_healthy(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            try:
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


async def load(url: str, bodies: list[tuple[bytes, dict[str, str], int]], seconds: float,
               concurrency: int, rate: float = 0.0) -> dict[str, float]:
    latencies: list[float] = []
    events, errors, cursor = 0, 0, 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal events, errors, cursor
            while time.perf_counter() < deadline and cursor < len(bodies):
                body, headers, size = bodies[cursor]
                cursor += 1
                if rate:  # the n-th request leaves n / rate seconds after the first
                    await asyncio.sleep(max(0.0, first + cursor / rate - time.perf_counter()))
                started = time.perf_counter()
                async with session.post(f"{url}/webhooks/whatsapp/wa-bench", data=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
                latencies.append(time.perf_counter() - started)
                events, errors = events + (size if ok else 0), errors + (0 if ok else 1)

        started = first = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "events": events, "errors": errors, "seconds": elapsed,
            "rps": len(latencies) / elapsed, "eps": events / elapsed,
            "p50_ms": quantiles[49] * 1000, "p99_ms": quantiles[98] * 1000}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (granian runs its worker in a child)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()}
    return own + sum(cpu_seconds(child) for child in children)


async def publish_seconds(url: str) -> tuple[float, float]:
    """(sum, count) of ingest's publish-latency histogram; zeros for the bare endpoint."""
    values = {"sum": 0.0, "count": 0.0}
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics/") as response:
        text = await response.text() if response.status == 200 else ""
    for line in text.splitlines():
        for suffix in values:
            if line.startswith(f"parley_ingest_publish_seconds_{suffix} "):
                values[suffix] = float(line.split()[1])
    return values["sum"], values["count"]


async def kafka_count(bootstrap: str, namespace: str) -> int:
    name = INBOUND_MESSAGES.name(namespace)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in range(INBOUND_MESSAGES.partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def clean_up(infra: dict[str, str], namespace: str) -> None:
    """The test-profile servers are shared: drop this run's cache keys, identities database and topics."""
    redis = Redis.from_url(infra["PARLEY_REDIS_URL"])
    async for key in redis.scan_iter(match=f"{namespace}:*", count=1000):
        await redis.delete(key)
    await redis.aclose()
    mongo = mongo_client(infra["PARLEY_MONGO_URI"], "parley-bench")
    await mongo.drop_database(f"parley_ingest_{namespace}")
    await mongo.close()
    await drop_namespace_topics(infra["PARLEY_KAFKA_BOOTSTRAP"], namespace)


async def run(target: str, env: dict[str, str], args: argparse.Namespace, seed: int) -> dict[str, float]:
    port = free_port()
    process = start_server(args.server, target, port, env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        bodies = payloads(int(args.seconds * 4000) + 2000, seed, args.senders)
        await load(url, bodies[:1000], 2.0, args.concurrency)  # warm-up: connections, caches, producer
        before, cpu_before = await publish_seconds(url), cpu_seconds(process.pid)
        result = await load(url, bodies[1000:], args.seconds, args.concurrency, args.rate)
        after, cpu_after = await publish_seconds(url), cpu_seconds(process.pid)
        # CPU the server itself used: a measure that other load on the machine does not distort much.
        result["cpu_ms_per_request"] = (cpu_after - cpu_before) / max(result["requests"], 1) * 1000
        result["cpu_ms_per_event"] = (cpu_after - cpu_before) / max(result["events"], 1) * 1000
        if after[1] > before[1]:
            result["publish_mean_ms"] = (after[0] - before[0]) / (after[1] - before[1]) * 1000
        return result
    finally:
        process.terminate()
        process.wait(timeout=30)


def report(name: str, result: dict[str, float]) -> None:
    print(f"{name:>8}: {result['requests']:.0f} requests, {result['events']:.0f} events in {result['seconds']:.1f} s"
          f" -> {result['rps']:.0f} req/s, {result['eps']:.0f} events/s, p50 {result['p50_ms']:.1f} ms,"
          f" p99 {result['p99_ms']:.1f} ms, errors {result['errors']:.0f}")
    extra = f"server CPU {result['cpu_ms_per_request']:.2f} ms/request, {result['cpu_ms_per_event']:.2f} ms/event"
    if "publish_mean_ms" in result:
        extra += f"; mean wait for Kafka acks {result['publish_mean_ms']:.1f} ms/request"
    print(f"{'':>10}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=sorted(SERVERS), default="uvicorn-httptools")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--senders", type=int, default=5000,
                        help="customers the messages come from at random: with few, nearly every one is known after "
                             "the warm-up (ingest's cache answers); with many, a message often comes from someone "
                             "new (looked up and recorded in ingest's database)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests per second in all, spread over the connections (0: as fast as they go); "
                             "at a low rate each request finds the server asleep, as a quiet moment's webhooks do")
    parser.add_argument("--middleware", action="store_true",
                        help="also measure the bare route behind the common correlation-id BaseHTTPMiddleware")
    args = parser.parse_args()
    infra, namespace = infra_env(), "bench" + uuid.uuid4().hex[:8]
    asyncio.run(ensure_topics(infra["PARLEY_KAFKA_BOOTSTRAP"], namespace))
    with tempfile.TemporaryDirectory() as tmp:
        channels = Path(tmp) / "channels.json"
        channels.write_text(json.dumps({"channels": [{
            "id": "wa-bench", "tenant_id": "bench", "type": "whatsapp", "app_secret": SECRET, "verify_token": "v",
            "phone_number_id": PHONE_NUMBER_ID, "access_token": "t"}]}))
        env = {**os.environ, **infra, "PARLEY_NAMESPACE": namespace, "PARLEY_CHANNELS_FILE": str(channels),
               "PARLEY_LOG_LEVEL": args_log_level(), "PARLEY_LOG_JSON": "true",
               "PARLEY_JWT_SECRET": os.environ.get("PARLEY_JWT_SECRET") or secrets.token_hex(32)}  # required
        pace = f", {args.rate:g} requests/s" if args.rate else ""
        print(f"server {args.server}, {args.concurrency} connections{pace}, {args.seconds:.0f} s, "
              f"cpus {os.cpu_count()}")
        ingest = asyncio.run(run("parley_ingest.app:app_from_env", env, args, seed=1))
        report("ingest", ingest)
        bare = asyncio.run(run("ingest_bare_app:app", env, args, seed=2))
        report("bare", bare)
        if args.middleware:
            report("bare+mw", asyncio.run(run("ingest_bare_app:app_with_middleware", env, args, seed=3)))
    stored = asyncio.run(kafka_count(infra["PARLEY_KAFKA_BOOTSTRAP"], namespace))
    asyncio.run(clean_up(infra, namespace))
    print(f"ratio ingest/bare: {ingest['rps'] / bare['rps']:.0%} of requests/s, {ingest['eps'] / bare['eps']:.0%}"
          " of events/s")
    print(f"kafka holds {stored} messages for {ingest['events']:.0f} accepted events (+ warm-up)")


def args_log_level() -> str:
    return os.environ.get("PARLEY_LOG_LEVEL", "WARNING")


if __name__ == "__main__":
    main()
