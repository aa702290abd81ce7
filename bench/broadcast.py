"""A broadcast against the fake provider (its own process, 50 ms per call) with outbound as a real service process
on the local Kafka, MongoDB and Redis: RECIPIENTS contacts spread over NUMBERS WhatsApp numbers limited to RATE
msg/s each, agents replying on those numbers meanwhile. Measures the send rate of each number (steady state: from
its 10th to its last send), the agents' replies from POST /v1/messages to the provider's answer (p50 / p99 / max),
outbound's RSS while it runs (sampled every second: start, at each quarter of the broadcast, peak) and its CPU time
per broadcast message.

    .venv/bin/python deploy/local/infra.py start --profile test
    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
    export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
    .venv/bin/python bench/broadcast.py [RECIPIENTS] [NUMBERS] [RATE] [AGENT_REPLIES]   # defaults 100000 10 80 200

The contacts arrive as contacts would publish them (parley.contacts.events.v1, ContactCreated with one WhatsApp
identity each); the agents' customers wrote a minute ago (parley.inbound.messages.v1), so their window is open."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from parley_common.auth import issue_token
from parley_common.cloudevents import headers_for
from parley_common.events.contacts import ContactCreated, Identity
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES, Topic

REPO = Path(__file__).resolve().parents[1]
FAKES = REPO / "tests/outbound/outbound_fakes.py"
TENANT = "bench"
JWT_SECRET = secrets.token_hex(32)
TEMPLATE = {"name": "spring_sale", "language": "en_US", "category": "marketing", "status": "approved",
            "body": "Hello {{1}}, spring sale: 20% off", "variables": [{"name": "1"}]}


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def channel_file(folder: Path, provider: str, numbers: list[str]) -> Path:
    path = folder / "channels.json"
    path.write_text(json.dumps({"channels": [
        {"id": number, "tenant_id": TENANT, "type": "whatsapp", "phone_number_id": f"90{index}", "waba_id": "9",
         "app_secret": "s", "verify_token": "v", "access_token": "t", "graph_api_base": f"{provider}/graph"}
        for index, number in enumerate(numbers)]}))
    return path


async def produce(bootstrap: str, namespace: str, topic: Topic, events: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, acks="all", max_batch_size=1 << 20)
    await producer.start()
    try:
        for start in range(0, len(events), 5000):
            sent = [await producer.send(topic.name(namespace), event.model_dump_json().encode(),
                                        key=event.partition_key(),
                                        headers=[(k, v.encode()) for k, v in headers_for(event).items()])
                    for event in events[start:start + 5000]]
            await asyncio.gather(*sent)
    finally:
        await producer.stop()


def process_sample(pid: int) -> tuple[float, float]:
    """(RSS in MiB, CPU seconds) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


async def seed(env: dict[str, str], recipients: int, numbers: list[str], replies: int) -> list[tuple[str, str]]:
    """The contacts (one WhatsApp identity each, spread over the numbers) and the agents' customers, who wrote a
    minute ago; answers the agents' (number, customer) pairs."""
    now = datetime.now(UTC)
    contacts = [ContactCreated(occurred_at=now, tenant_id=TENANT, correlation_id="bench", contact_id=f"c{i:07d}",
                               identities=(Identity(channel_id=numbers[i % len(numbers)],
                                                    external_user_id=f"49{i:010d}"),))
                for i in range(recipients)]
    agents_customers = [(numbers[i % len(numbers)], f"48{i:010d}") for i in range(replies)]
    wrote = [MessageReceived(occurred_at=now, tenant_id=TENANT, correlation_id="bench", channel_id=number,
                             external_user_id=user, channel_type="whatsapp", customer=Customer(),
                             provider_message_id=f"in-{user}", provider_timestamp=now - timedelta(minutes=1),
                             received_at=now, parts=(TextPart(text="hello"),)) for number, user in agents_customers]
    await produce(env["PARLEY_KAFKA_BOOTSTRAP"], env["PARLEY_NAMESPACE"], CONTACTS_EVENTS, contacts)
    await produce(env["PARLEY_KAFKA_BOOTSTRAP"], env["PARLEY_NAMESPACE"], INBOUND_MESSAGES, wrote)
    return agents_customers


async def run(recipients: int, numbers: list[str], rate: float, replies: int, env: dict[str, str],
              outbound: str, pid: int) -> None:
    started = time.perf_counter()
    agents_customers = await seed(env, recipients, numbers, replies)
    print(f"published {recipients:,} contacts in {time.perf_counter() - started:.1f} s")
    manager = {"Authorization": f"Bearer {issue_token(JWT_SECRET, TENANT, 'boss', ['manager'])}"}
    body = {"name": "bench", "channel_ids": numbers, "audience": {"channel_ids": numbers},
            "template": {"name": "spring_sale", "language": "en_US",
                         "variables": {"1": {"field": "display_name", "fallback": "friend"}}}}
    mongo = mongo_client(env["PARLEY_MONGO_URI"], "bench")
    database = mongo[f"parley_outbound_{env['PARLEY_NAMESPACE']}"]
    async with httpx.AsyncClient(base_url=outbound, timeout=600) as http:
        for number in numbers:
            assert (await http.put(f"/v1/templates/{number}", json=TEMPLATE, headers=manager)).status_code == 200
        while (projected := await database["audience_contacts"].count_documents({})) < recipients:
            print(f"  audience projection {projected:,}/{recipients:,} after {time.perf_counter() - started:.0f} s")
            await asyncio.sleep(10)
        print(f"audience projected after {time.perf_counter() - started:.1f} s")
        rss_start, cpu_start = process_sample(pid)
        created = await http.post("/v1/broadcasts", json=body, headers=manager)
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        samples, reply_ids, elapsed, progress = await watch(http, broadcast_id, recipients, pid, agents_customers)
        rss_end, cpu_end = process_sample(pid)
    print(f"broadcast: {recipients:,} recipients, {progress['sent']:,} sent, failed {progress['failed']}, "
          f"skipped {progress['skipped']}; sending took {elapsed:.0f} s")
    await report_rates(database, broadcast_id, numbers, rate)
    await report_replies(database, reply_ids)
    quarters = [next((rss for share, rss in samples if share >= q), samples[-1][1]) for q in (0.25, 0.5, 0.75)]
    print(f"outbound RSS: before {rss_start:.0f} MiB, at 25/50/75 % {' / '.join(f'{q:.0f}' for q in quarters)} "
          f"MiB, end {rss_end:.0f} MiB, peak {max(rss for _, rss in samples):.0f} MiB")
    cpu = cpu_end - cpu_start
    print(f"outbound CPU: {cpu:.1f} s for {recipients:,} recipients = {cpu / recipients * 1000:.2f} ms per message "
          f"(resolve + send + record + events; the agents' replies included)")
    await mongo.close()


async def watch(http: httpx.AsyncClient, broadcast_id: str, recipients: int, pid: int,
                agents_customers: list[tuple[str, str]],
                ) -> tuple[list[tuple[float, float]], dict[str, float], float, dict[str, Any]]:
    """Poll the progress every second until completed, one agent reply per poll while it sends; answers the RSS
    samples (share done, MiB), the replies (message id → posted at), the sending time and the last progress."""
    manager = {"Authorization": f"Bearer {issue_token(JWT_SECRET, TENANT, 'boss', ['manager'])}"}
    agent = {"Authorization": f"Bearer {issue_token(JWT_SECRET, TENANT, 'agent.bench', ['agent'])}"}
    samples: list[tuple[float, float]] = []
    reply_ids: dict[str, float] = {}
    agents = iter(agents_customers)
    sending_started: float | None = None
    while True:
        view = (await http.get(f"/v1/broadcasts/{broadcast_id}", headers=manager)).json()
        progress: dict[str, Any] = view["progress"]
        done = progress["sent"] + sum(progress["failed"].values())
        samples.append((done / recipients, process_sample(pid)[0]))
        if view["state"] == "completed" and not progress["queued"]:
            break
        if done and sending_started is None:
            sending_started = time.perf_counter()
        if done and (pair := next(agents, None)) is not None:
            reply_ids[await agent_reply(http, agent, *pair)] = time.time()
        await asyncio.sleep(1.0)
    return samples, reply_ids, time.perf_counter() - (sending_started or time.perf_counter()), progress


async def report_replies(database: Any, reply_ids: dict[str, float]) -> None:
    latencies = []
    for message_id, posted in reply_ids.items():
        doc = await database["outbound_messages"].find_one({"_id": message_id})
        if doc and doc.get("history", {}).get("sent"):
            latencies.append(doc["history"]["sent"].timestamp() - posted)
    if len(latencies) >= 2:
        quantiles = statistics.quantiles(latencies, n=100)
        print(f"agent replies during it: {len(latencies)} of {len(reply_ids)} sent; accept-to-provider p50 "
              f"{statistics.median(latencies) * 1000:.0f} ms, p99 {quantiles[98] * 1000:.0f} ms, max "
              f"{max(latencies) * 1000:.0f} ms (the provider's 50 ms included)")


async def agent_reply(http: httpx.AsyncClient, agent: dict[str, str], number: str, user: str) -> str:
    response = await http.post("/v1/messages", headers=agent, json={
        "channel_id": number, "recipient": {"external_user_id": user},
        "content": {"kind": "text", "text": "an agent's answer"}})
    assert response.status_code == 202, response.text
    return str(response.json()["message_id"])


async def report_rates(database: Any, broadcast_id: str, numbers: list[str], rate: float) -> None:
    """Each number's broadcast sends per second from its 10th to its last (the first burst excluded)."""
    measured = []
    for number in numbers:
        cursor = database["outbound_messages"].find({"broadcast_id": broadcast_id, "channel_id": number,
                                                     "state": "sent"}, {"history.sent": 1})
        times = sorted([doc["history"]["sent"] async for doc in cursor])
        if len(times) > 20:
            measured.append((len(times) - 10) / (times[-1] - times[9]).total_seconds())
    deviations = [(value / rate - 1) * 100 for value in measured]
    print(f"rate per number (configured {rate:g}/s): " + ", ".join(f"{value:.1f}" for value in measured)
          + f"; deviation {min(deviations):+.1f} % … {max(deviations):+.1f} %")


def main() -> None:
    recipients, count, rate, replies = (type_(sys.argv[i]) if len(sys.argv) > i else default
                                        for i, type_, default in ((1, int, 100_000), (2, int, 10), (3, float, 80.0),
                                                                  (4, int, 200)))
    logging.basicConfig(level=logging.WARNING)
    numbers = [f"wa-bench-{index}" for index in range(count)]
    provider_port, outbound_port = free_port(), free_port()
    namespace = "bench" + uuid.uuid4().hex[:8]
    folder = Path(tempfile.mkdtemp(prefix="broadcast-bench-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARLEY_")} | {
        "PARLEY_KAFKA_BOOTSTRAP": os.environ["PARLEY_KAFKA_BOOTSTRAP"],
        "PARLEY_MONGO_URI": os.environ["PARLEY_MONGO_URI"], "PARLEY_REDIS_URL": os.environ["PARLEY_REDIS_URL"],
        "PARLEY_NAMESPACE": namespace, "PARLEY_JWT_SECRET": JWT_SECRET, "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_CHANNELS_FILE": str(channel_file(folder, f"http://127.0.0.1:{provider_port}", numbers)),
        "PARLEY_OUTBOUND_PORT": str(outbound_port), "PARLEY_OUTBOUND_HOST": "127.0.0.1",
        "PARLEY_OUTBOUND_MEDIA_BASE_URL": f"http://127.0.0.1:{provider_port}/media",
        "PARLEY_OUTBOUND_RATE_PER_SECOND": json.dumps({"whatsapp": rate}),
    }
    asyncio.run(ensure_topics(env["PARLEY_KAFKA_BOOTSTRAP"], namespace))
    provider = subprocess.Popen([sys.executable, str(FAKES), str(provider_port), "0.05"])
    with (folder / "outbound.log").open("wb") as log:
        service = subprocess.Popen([str(REPO / ".venv/bin/parley-outbound")], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_ready(f"http://127.0.0.1:{outbound_port}")
        print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
        asyncio.run(run(recipients, numbers, rate, replies, env, f"http://127.0.0.1:{outbound_port}", service.pid))
        print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    finally:
        service.terminate()
        provider.terminate()
        service.wait(30)
        provider.wait(10)
        asyncio.run(cleanup(env, namespace))


def wait_ready(url: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("outbound not ready")


async def cleanup(env: dict[str, str], namespace: str) -> None:
    mongo = mongo_client(env["PARLEY_MONGO_URI"], "bench")
    await mongo.drop_database(f"parley_outbound_{namespace}")
    await mongo.close()
    redis = redis_client(env["PARLEY_REDIS_URL"])
    async for key in redis.scan_iter(match=f"{namespace}:*"):
        await redis.delete(key)
    await redis.aclose()
    await drop_namespace_topics(env["PARLEY_KAFKA_BOOTSTRAP"], namespace)


if __name__ == "__main__":
    main()
