"""Helpers of the outbound integration tests: publishing inbound facts, waiting, reading topics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from redis.asyncio import Redis

from parley_common.auth import issue_token
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher
from parley_common.settings import InfraSettings
from parley_common.topics import Topic
from parley_outbound.adapters.projection_marker import ProjectionMarker

TENANT = "acme"
TIMEOUT = 20.0


def manager(app: FastAPI, infra_settings: InfraSettings) -> httpx.AsyncClient:
    token = issue_token(infra_settings.jwt_secret.get_secret_value(), TENANT, "boss", ["manager"])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                             headers={"Authorization": f"Bearer {token}"})


def publisher(app: FastAPI) -> EventPublisher:
    return app.state.publisher  # type: ignore[no-any-return]


def customer_message(channel_id: str, channel_type: str, user: str, age: timedelta, **extra: Any) -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id=TENANT, correlation_id="c-in", channel_id=channel_id, external_user_id=user,
        channel_type=channel_type, customer=Customer(), provider_message_id=f"in-{user}-{age}",
        provider_timestamp=now - age, received_at=now, parts=extra.pop("parts", (TextPart(text="hello"),)), **extra,
    )


async def projections_complete(redis: Redis, prefix: str) -> None:
    """Mark the cache's projections complete, as a rebuild does (a test of the projections without the app)."""
    marker = ProjectionMarker(redis, prefix)
    assert await marker.take_lease("test", 30) and await marker.finish("test")


async def cache_restarts_empty(redis: Redis, infra: InfraSettings) -> None:
    """What a restart with nothing kept does to this deployment's keys."""
    async for key in redis.scan_iter(match=f"{infra.redis_prefix()}*"):
        await redis.delete(key)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def window_open(client: httpx.AsyncClient, channel_id: str, user: str) -> None:
    async def seen() -> bool:
        response = await client.get(f"/v1/windows/{channel_id}/{user}")
        assert response.status_code == 200, response.text
        return response.json()["last_customer_message_at"] is not None
    await eventually(seen)


async def post_when_media_known(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    """POST /v1/messages, again while the media projection has not yet seen the attachment's MediaStored."""
    for _ in range(100):
        response = await client.post("/v1/messages", json=body)
        if response.status_code == 202 or response.json()["error"]["code"] != "media_not_found":
            return response
        await asyncio.sleep(0.1)
    return response


async def status_of(client: httpx.AsyncClient, message_id: str, wanted: str) -> dict[str, Any]:
    result: dict[str, Any] = {}

    async def reached() -> bool:
        result.update((await client.get(f"/v1/messages/{message_id}")).json())
        return result.get("status") == wanted
    await eventually(reached)
    return result


async def read_topic(settings: InfraSettings, topic: Topic, until: Callable[[list[Any]], bool],
                     where: Callable[[Any], bool] = lambda _: True) -> list[Any]:
    """The topic's events from the start that match `where`, read until `until` holds for them."""
    consumer = AIOKafkaConsumer(topic.name(settings.namespace), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{uuid.uuid4().hex}",
                                enable_auto_commit=False)
    await consumer.start()
    events: list[Any] = []
    try:
        while not until(events):
            record = await asyncio.wait_for(consumer.getone(), TIMEOUT)
            event = topic.parse(record.value)
            if where(event):
                events.append(event)
    finally:
        await consumer.stop()
    return events
