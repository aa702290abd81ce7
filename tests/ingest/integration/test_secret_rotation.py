"""A webhook secret rotated with overlap, over HTTP to the real broker: while the old value is listed in
`previous_inbound_secrets`, webhooks signed with it and with the new one are both published; others are not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from parley_common.channels import Channels
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from parley_ingest.app import create_app
from parley_ingest.settings import IngestSettings
from tests.ingest.conftest import APP_SECRET, CHANNELS

NEW_SECRET = "the-new-meta-app-secret"


@pytest.fixture
async def rotating(kafka_topics: InfraSettings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    entries = [{**entry, "app_secret": NEW_SECRET, "previous_inbound_secrets": [APP_SECRET]}
               if entry["id"] == "wa-main" else entry for entry in CHANNELS["channels"]]
    app = create_app(IngestSettings(infra=kafka_topics, publish_timeout_seconds=10),
                     channels=Channels.parse({"channels": entries}))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest") as http:
        yield http


async def test_old_and_new_app_secret_both_verify_during_the_overlap(rotating: httpx.AsyncClient, kit: Any,
                                                                       topics: Any) -> None:
    text = kit.fixture("whatsapp_messages.json")["text"]
    answers = {}
    for secret in (APP_SECRET, NEW_SECRET, "a-third-secret"):
        body = kit.body(kit.whatsapp([{**text, "id": f"wamid.rotation-{secret}"}]))
        response = await rotating.post("/webhooks/whatsapp/wa-main", content=body,
                                       headers=kit.meta_headers(body, secret=secret))
        answers[secret] = response.status_code
    assert answers == {APP_SECRET: 200, NEW_SECRET: 200, "a-third-secret": 401}
    published = sorted(event.provider_message_id for event in await topics.events(INBOUND_MESSAGES))
    assert published == [f"wamid.rotation-{APP_SECRET}", f"wamid.rotation-{NEW_SECRET}"]
