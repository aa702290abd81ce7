"""Outbound send pipeline against the fake provider (50 ms per call, its own process), on the real local
Kafka, MongoDB and Redis: sends/s through the requests topic on one process, accept latency of
POST /v1/messages, and the measured send rate against a configured per-sender limit.

    .venv/bin/python deploy/local/infra.py start --profile test
    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
    export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
    .venv/bin/python bench/outbound_send.py [SENDS] [ACCEPTS] [RATE]     # defaults 5000 500 30

Prints the machine's load average with the numbers (the servers share the cores with everything else) and this
process's CPU time during the send phase (where the time goes when the pipeline is CPU-bound). The rate phase
sends 10 * RATE messages on one channel limited to RATE/s."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from parley_common.auth import issue_token
from parley_common.channels import Channels
from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_common.ids import ConversationKey
from parley_common.kafka import ensure_topics
from parley_common.logging import configure_logging
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_common.topics import OUTBOUND_REQUESTS
from parley_outbound.app import create_app
from parley_outbound.settings import OutboundSettings

FAKES = Path(__file__).resolve().parents[1] / "tests/outbound/outbound_fakes.py"
TENANT = "bench"


def channels(base_url: str) -> Channels:
    def telegram(channel_id: str) -> dict[str, Any]:
        return {"id": channel_id, "tenant_id": TENANT, "type": "telegram", "bot_token": "1:B", "webhook_secret": "w",
                "api_base": f"{base_url}/telegram"}
    return Channels.parse({"channels": [telegram("tg-fast"), telegram("tg-limited")]})


def command(channel_id: str, user: str) -> SendMessage:
    return SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="bench", channel_id=channel_id,
                       external_user_id=user, message_id=uuid.uuid4().hex, channel_type="telegram",
                       sender=Sender(kind="bot", bot_id="bench"), content=OutboundText(text="bench message"))


async def wait_sent(collection: Any, channel_id: str, count: int, limit_seconds: float = 600) -> float:
    started = time.perf_counter()
    while await collection.count_documents({"channel_id": channel_id, "state": "sent"}) < count:
        if time.perf_counter() - started > limit_seconds:
            raise TimeoutError("sends did not finish")
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def publish_all(app: Any, commands: list[SendMessage]) -> None:
    publisher = app.state.publisher
    for start in range(0, len(commands), 500):
        await asyncio.gather(*(publisher.publish(c, OUTBOUND_REQUESTS) for c in commands[start:start + 500]))


async def seed_windows(app: Any, channel_id: str, users: list[str]) -> None:
    projections = app.state.sender.projections
    at = datetime.now(UTC) - timedelta(minutes=1)
    for start in range(0, len(users), 50):
        await asyncio.gather(*(projections.record_customer_message(ConversationKey(TENANT, channel_id, user), at,
                                                                    False, None) for user in users[start:start + 50]))


async def run(port: int) -> None:
    sends, accepts, rate = (int(sys.argv[i]) if len(sys.argv) > i else default
                            for i, default in ((1, 5000), (2, 500), (3, 30)))
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)),
                          namespace="bench" + uuid.uuid4().hex[:8], log_level="WARNING")
    configure_logging("bench", "WARNING", False)
    logging.getLogger("faststream").setLevel(logging.WARNING)
    await ensure_topics(infra.kafka_bootstrap, infra.namespace)
    settings = OutboundSettings(infra=infra, rate_per_second={"telegram": 100_000.0},
                                channel_rate_per_second={"tg-limited": float(rate)})
    app = create_app(settings, channels=channels(f"http://127.0.0.1:{port}"))
    mongo = mongo_client(infra.mongo_uri, "bench")
    collection = mongo[infra.database_name("outbound")]["outbound_messages"]
    try:
        await asyncio.sleep(1.0)  # the provider process starts
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            await asyncio.sleep(3.0)  # consumer group joins
            users = [f"u{i}" for i in range(sends)]
            await seed_windows(app, "tg-fast", users)
            await seed_windows(app, "tg-limited", users[:rate * 10])
            print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")

            cpu_started = time.process_time()
            started = time.perf_counter()
            await publish_all(app, [command("tg-fast", user) for user in users])
            published = time.perf_counter() - started
            elapsed = published + await wait_sent(collection, "tg-fast", sends)
            cpu = time.process_time() - cpu_started
            print(f"send pipeline: {sends} sends in {elapsed:.2f} s = {sends / elapsed:,.0f} sends/s "
                  f"(publish of the commands took {published:.2f} s; provider latency 50 ms; CPU of this process "
                  f"{cpu:.1f} s = {cpu / sends * 1000:.2f} ms per send)")

            latencies = await measure_accepts(app, infra, users[:accepts])
            print(f"accept latency (POST /v1/messages, {accepts} sequential): p50 {latencies[0]:.1f} ms, "
                  f"p99 {latencies[1]:.1f} ms")
            await wait_sent(collection, "tg-fast", sends + accepts)  # drained before the rate is measured

            await publish_all(app, [command("tg-limited", user) for user in users[:rate * 10]])
            await wait_sent(collection, "tg-limited", rate * 10)
            times = sorted([doc["history"]["sent"] async for doc in collection.find({"channel_id": "tg-limited"})])
            span = (times[-1] - times[0]).total_seconds()
            measured = (len(times) - 1) / span
            print(f"rate limit: configured {rate}/s, measured {measured:.1f}/s over {len(times)} sends "
                  f"({(measured / rate - 1) * 100:+.1f} %)")
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
            pauses = [gap for gap in gaps if gap > 5 / rate]  # the channel idled: between consumer batches
            active = (len(gaps) - len(pauses)) / (span - sum(pauses))
            print(f"  of which {len(pauses)} pauses between consumer batches, {sum(pauses):.2f} s in all; "
                  f"while sending {active:.1f}/s ({(active / rate - 1) * 100:+.1f} %)")
            print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    finally:
        await mongo.drop_database(infra.database_name("outbound"))
        await mongo.close()


async def measure_accepts(app: Any, infra: InfraSettings, users: list[str]) -> tuple[float, float]:
    token = issue_token(infra.jwt_secret.get_secret_value(), TENANT, "agent.bench", ["agent"])
    samples = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        for user in users:
            body = {"channel_id": "tg-fast", "recipient": {"external_user_id": user},
                    "content": {"kind": "text", "text": "accept latency"}}
            started = time.perf_counter()
            response = await client.post("/v1/messages", json=body)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
    quantiles = statistics.quantiles(samples, n=100)
    return statistics.median(samples), quantiles[98]


def main() -> None:
    port = 18000 + uuid.uuid4().int % 2000
    provider = subprocess.Popen([sys.executable, str(FAKES), str(port), "0.05"])  # its own process and core
    try:
        asyncio.run(run(port))
    finally:
        provider.terminate()
        provider.wait(10)


if __name__ == "__main__":
    main()
