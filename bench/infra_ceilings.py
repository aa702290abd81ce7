"""The infrastructure alone, for bench/pipeline.py: what the local broker, database and an HTTP server do without
Parley's code around them — the ceilings the pipeline's numbers are read against. Each measurement reports the
server's own CPU per operation (from /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from ingest_webhooks import free_port, wait_healthy
from proc_cpu import QUIET_GAP_SECONDS, ProcessGroups, Usage
from pymongo import InsertOne, UpdateOne

from parley_common.mongo import mongo_client

REPO = Path(__file__).resolve().parents[1]
RECORDS = 20_000
SINGLE_INSERTS = 1_000
SPACED_INSERTS = 200
CONNECTIONS_AT_ONCE = 4  # several services' writes meeting in the database, as in a pipeline step
BULK_DOCS = 20_000
SMALL_BATCH = 20
SMALL_BATCH_DOCS = 2_000
HTTP_SECONDS = 5.0
SPACED_REQUESTS = 300


async def measure(endpoints: dict[str, str], groups: ProcessGroups) -> dict[str, Any]:
    found = [await broker(endpoints["PARLEY_KAFKA_BOOTSTRAP"], groups),
             *await database(endpoints["PARLEY_MONGO_URI"], groups),
             await bare_http()]
    return {"infrastructure": found}


def _cpu_ms(groups: ProcessGroups, name: str, before: dict[str, float], count: int) -> float:
    return (groups.cpu_seconds()[name] - before[name]) * 1000 / count


async def broker(bootstrap: str, groups: ProcessGroups) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=1)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"{topic}-reader")
    await producer.start()
    await consumer.start()
    try:
        before, started = groups.cpu_seconds(), time.monotonic()
        value = b'{"event": "' + b"x" * 400 + b'"}'
        sends = [await producer.send(topic, value, key=str(n % 5000).encode()) for n in range(RECORDS)]
        await asyncio.gather(*sends)
        received = 0
        while received < RECORDS and time.monotonic() - started < 120:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            received += sum(len(records) for records in batches.values())
        elapsed = time.monotonic() - started
        cpu = _cpu_ms(groups, "broker", before, received)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.delete_topics([topic])
        await admin.close()
    return f"broker produce → consume {received / elapsed:,.0f} records/s ({cpu:.2f} ms broker CPU per record)"


async def database(uri: str, groups: ProcessGroups) -> list[str]:
    client = mongo_client(uri, "bench-ceilings")
    name = f"bench_ceiling_{uuid.uuid4().hex[:8]}"
    collection = client[name]["docs"]
    try:
        before, started = groups.cpu_seconds(), time.monotonic()
        for n in range(SINGLE_INSERTS):
            await collection.insert_one({"n": n, "text": "hello, I need help", "tenant": "acme"})
        single_rate = SINGLE_INSERTS / (time.monotonic() - started)
        single_cpu = _cpu_ms(groups, "database", before, SINGLE_INSERTS)
        before = groups.cpu_seconds()
        for n in range(SPACED_INSERTS):
            await asyncio.sleep(QUIET_GAP_SECONDS)
            await collection.insert_one({"n": n, "text": "hello, I need help", "tenant": "acme"})
        spaced_cpu = _cpu_ms(groups, "database", before, SPACED_INSERTS)
        together = await _inserts_from_connections(collection, groups)
        before, started = groups.cpu_seconds(), time.monotonic()
        for first in range(0, BULK_DOCS, 500):
            await collection.insert_many([{"n": n, "text": "hello, I need help", "tenant": "acme"}
                                          for n in range(first, first + 500)])
        bulk_rate = BULK_DOCS / (time.monotonic() - started)
        bulk_cpu = _cpu_ms(groups, "database", before, BULK_DOCS)
        small_batches = {kind: await _small_batches(collection, groups, kind)
                         for kind in ("insert", "upsert", "update")}
    finally:
        await client.drop_database(name)
        await client.close()
    return [f"database single insert {single_rate:,.0f}/s ({single_cpu:.2f} ms server CPU each back to back, "
            f"{spaced_cpu:.2f} ms each {QUIET_GAP_SECONDS * 1000:.0f} ms apart: the server woken for each; "
            f"{together.cpu_seconds * 1000:.2f} ms and {together.wakeups:.1f} wake-ups of the server each from "
            f"{CONNECTIONS_AT_ONCE} connections at once)",
            f"`insert_many` of 500 {bulk_rate:,.0f} docs/s ({bulk_cpu:.3f} ms per document)",
            f"bulk writes of {SMALL_BATCH} (a consumer batch's size) {small_batches['insert']:.3f} ms per document "
            f"inserted, {small_batches['upsert']:.3f} ms per document upserted by `_id` (a new one), "
            f"{small_batches['update']:.3f} ms per document updated by `_id` (`$inc`, an existing one)"]


async def _inserts_from_connections(collection: Any, groups: ProcessGroups) -> Usage:
    """The database's CPU and wake-ups per insert of single inserts sent from CONNECTIONS_AT_ONCE connections at
    once, back to back on each (the client's pool opens a connection per insert in flight)."""
    each = SINGLE_INSERTS // CONNECTIONS_AT_ONCE

    async def inserts(connection: int) -> None:
        for n in range(each):
            await collection.insert_one({"n": n, "connection": connection, "text": "hello, I need help"})

    before = groups.usage()["database"]
    await asyncio.gather(*(inserts(connection) for connection in range(CONNECTIONS_AT_ONCE)))
    return (groups.usage()["database"] - before).times(1 / (each * CONNECTIONS_AT_ONCE))


async def _small_batches(collection: Any, groups: ProcessGroups, kind: str) -> float:
    """The database's CPU per document of bulk writes of SMALL_BATCH: inserts or upserts by `_id` (as the
    services' projections create documents where they are there already), each of a new document; or updates of
    the upserted ones (as a counter or a projection changes a document it holds)."""
    def document(n: int) -> dict[str, Any]:
        return {"tenant_id": "acme", "team_id": "sales", "status": "queued", "n": n}
    before = groups.cpu_seconds()
    for first in range(0, SMALL_BATCH_DOCS, SMALL_BATCH):
        numbers = range(first, first + SMALL_BATCH)
        writes: list[InsertOne[dict[str, Any]] | UpdateOne] = (
            [InsertOne({"_id": f"insert-{n}", **document(n)}) for n in numbers] if kind == "insert" else
            [UpdateOne({"_id": f"upsert-{n}"}, {"$set": document(n)}, upsert=True) for n in numbers] if kind == "upsert"
            else [UpdateOne({"_id": f"upsert-{n}"}, {"$inc": {"n": 1}}) for n in numbers])
        await collection.bulk_write(writes, ordered=False)
    return _cpu_ms(groups, "database", before, SMALL_BATCH_DOCS)


async def bare_http() -> str:
    import aiohttp

    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before the load
        [sys.executable, "-m", "uvicorn", "ingest_bare_app:app", "--port", str(port), "--log-level", "warning",
         "--no-access-log", "--http", "httptools", "--loop", "uvloop"],
        cwd=REPO / "bench", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    groups = ProcessGroups({"http": server.pid})
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            body = b'{"object": "whatsapp_business_account", "entry": []}'
            done = 0
            before, started = groups.cpu_seconds(), time.monotonic()

            async def worker() -> None:
                nonlocal done
                while time.monotonic() - started < HTTP_SECONDS:
                    async with session.post(f"{url}/webhooks/whatsapp/wa", data=body) as response:
                        await response.read()
                    done += 1

            await asyncio.gather(*(worker() for _ in range(32)))
            elapsed = time.monotonic() - started
            cpu = _cpu_ms(groups, "http", before, done)
            before = groups.cpu_seconds()
            for _ in range(SPACED_REQUESTS):  # one at a time, as a quiet moment's webhooks come
                await asyncio.sleep(QUIET_GAP_SECONDS)
                async with session.post(f"{url}/webhooks/whatsapp/wa", data=body) as response:
                    await response.read()
            spaced_cpu = _cpu_ms(groups, "http", before, SPACED_REQUESTS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    return (f"bare HTTP route (FastAPI, uvicorn) {done / elapsed:,.0f} req/s from 32 connections ({cpu:.2f} ms server "
            f"CPU per request; {spaced_cpu:.2f} ms each {QUIET_GAP_SECONDS * 1000:.0f} ms apart)")
