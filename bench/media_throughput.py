"""Media benchmark: download-and-store throughput of 200 KB images from a local fake provider (through the
real Kafka and MongoDB, one media process), and signed-download latency of a 200 KB object.

Run (test-profile infra up; for S3 start any S3 server and pass it):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI
  .venv/bin/python bench/media_throughput.py --count 400 [--storage s3 --s3-endpoint http://127.0.0.1:29334]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from parley_common.auth import issue_token
from parley_common.kafka import EventPublisher, ensure_topics, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from parley_media.app import create_app
from parley_media.settings import MediaSettings
from tests.media.conftest import channels_for, jpeg_of_size, media_part, message
from tests.media.fake_provider import serve_fake_provider


def settings_for(args: argparse.Namespace) -> MediaSettings:
    infra = InfraSettings(namespace=f"bench{uuid.uuid4().hex[:8]}", jwt_secret=SecretStr("b" * 40))
    extra: dict[str, Any] = {}
    if args.storage == "s3":
        extra = {"storage": "s3", "s3_endpoint_url": args.s3_endpoint, "s3_bucket": infra.namespace,
                 "s3_access_key": args.s3_access_key, "s3_secret_key": SecretStr(args.s3_secret_key),
                 "s3_create_bucket": True}
    return MediaSettings(infra=infra, sweeper_enabled=False, signing_secret=SecretStr(secrets.token_hex(32)),
                         id_secret=SecretStr(secrets.token_hex(32)), **extra)


async def throughput(app: Any, settings: MediaSettings, base_url: str, count: int) -> float:
    broker = make_broker(settings.infra.kafka_bootstrap, "bench")
    await broker.connect()
    publisher = EventPublisher(broker, settings.infra.namespace)
    repo = app.state.pipeline.repo
    try:
        for index in range(count):  # distinct customers: spread over partitions like real traffic
            part = media_part("url", f"{base_url}/cdn/img{index}", f"bench.{index}")
            event = message((part,), channel_id="fb-page", channel_type="messenger", user=f"u{index}",
                            message_id=f"mid.{index}")
            await publisher.publish(event, INBOUND_MESSAGES)
        started = time.perf_counter()
        while await repo._media.count_documents({"state": "stored"}) < count:  # noqa: ASYNC110 - polls the DB
            await asyncio.sleep(0.05)
        return count / (time.perf_counter() - started)
    finally:
        await broker.stop()


async def download_latency(client: httpx.AsyncClient, settings: MediaSettings,
                           samples: int) -> tuple[list[float], list[float]]:
    token = issue_token(settings.infra.jwt_secret.get_secret_value(), "acme", "bench", ["agent"])
    auth = {"Authorization": f"Bearer {token}"}
    image = jpeg_of_size(200_000)
    created = await client.post("/v1/media?channel_id=tg-bot", files={"file": ("p.jpg", image, "image/jpeg")},
                                headers=auth)
    media_id = created.json()["id"]
    metadata, content = [], []
    for _ in range(samples):
        started = time.perf_counter()
        meta = (await client.get(f"/v1/media/{media_id}", headers=auth)).json()
        middle = time.perf_counter()
        url = httpx.URL(meta["download_url"])
        body = await client.get(f"{url.path}?{url.query.decode()}")
        content.append((time.perf_counter() - middle) * 1000)
        metadata.append((middle - started) * 1000)
        assert body.content == image
    return sorted(metadata), sorted(content)


def describe(timings: list[float]) -> str:
    p99 = timings[max(0, int(len(timings) * 0.99) - 1)]
    return f"p50={statistics.median(timings):.1f} ms p99={p99:.1f} ms max={timings[-1]:.1f} ms"


async def main(args: argparse.Namespace) -> None:
    settings = settings_for(args)
    await ensure_topics(settings.infra.kafka_bootstrap, settings.infra.namespace)
    async with serve_fake_provider() as provider:
        images = [jpeg_of_size(200_000) for _ in range(16)]
        for index in range(args.count):
            # Trailing bytes after the JPEG's end marker: every file has its own sha256, still a valid image.
            provider.files[f"img{index}"] = images[index % 16] + os.urandom(4)
        app = create_app(settings, channels=channels_for(provider.base_url))
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
            rate = await throughput(app, settings, provider.base_url, args.count)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://media") as client:
                metadata, content = await download_latency(client, settings, args.samples)
    print(f"storage={args.storage} images={args.count} x ~200KB: {rate:.1f} media/s downloaded+stored "
          "(Kafka -> fake provider HTTP -> sniff/sha256/thumbnail -> blob + MongoDB -> MediaStored)")
    print(f"GET /v1/media/{{id}} (JWT, metadata + signed links), {args.samples} samples: {describe(metadata)}")
    print(f"signed download of a 200KB object (HMAC check, metadata read, blob stream): {describe(content)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--storage", choices=["gridfs", "s3"], default="gridfs")
    parser.add_argument("--s3-endpoint", default="http://127.0.0.1:29334")
    parser.add_argument("--s3-access-key", default="parleytest")
    parser.add_argument("--s3-secret-key", default="parleytestsecret")
    asyncio.run(main(parser.parse_args()))
