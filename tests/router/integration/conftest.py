"""Router over the real broker, database and cache: the app with its lifespan, an HTTP client, helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords
from asgi_lifespan import LifespanManager
from known_channels import TEST_CHANNELS

from parley_common.auth import issue_token
from parley_common.clock import FixedClock
from parley_common.events.contacts import ContactCreated, Identity
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_common.topics import CONVERSATIONS_EVENTS, Topic
from parley_router.app import create_app
from parley_router.domain.conversation import Conversation
from parley_router.handlers.engine import Engine
from parley_router.settings import RouterSettings

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday, inside default business hours


@dataclass
class Router:
    client: httpx.AsyncClient
    engine: Engine
    clock: FixedClock
    secret: str
    infra: InfraSettings
    app: Any

    def auth(self, login: str, roles: list[str], tenant: str = "acme") -> dict[str, str]:
        token = issue_token(self.secret, tenant, login, roles, now=datetime.now(UTC))
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, login: str = "boss", roles: list[str] | None = None,
                   tenant: str = "acme", **kwargs: Any) -> httpx.Response:
        headers = self.auth(login, roles or ["manager"], tenant)
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    async def agent(self, login: str, teams: list[str], capacity: int = 2, online: bool = True,
                    tenant: str = "acme", **spec: Any) -> None:
        await self.ok("PUT", f"/v1/agents/{login}", tenant=tenant,
                      json={"teams": teams, "default_capacity": capacity, **spec})
        if online:
            await self.ok("POST", "/v1/agents/me/heartbeat", login=login, roles=["agent"], tenant=tenant,
                          json={"presence": "online"})


def inbound(user: str = "u1", text: str = "hello", tenant: str = "acme", channel: str = "wa-1",
            message_id: str | None = None, at: datetime = T0, name: str | None = None,
            phone: str | None = None) -> MessageReceived:
    return MessageReceived(
        occurred_at=at, tenant_id=tenant, correlation_id="c", channel_id=channel, external_user_id=user,
        channel_type="whatsapp", customer=Customer(wa_id=user, profile_name=name, phone_e164=phone),
        provider_message_id=message_id or f"wamid.{text}",
        provider_timestamp=at, received_at=at, parts=(TextPart(text=text),),
    )


ENVELOPE: dict[str, Any] = {"occurred_at": T0, "tenant_id": "acme", "correlation_id": "c"}


def identity(user: str) -> Identity:
    return Identity(channel_id="wa-1", external_user_id=user)


def created(contact: str, user: str, name: str | None = None, phones: tuple[str, ...] = ()) -> ContactCreated:
    """Contacts' announcement of `user`'s card on the test channel."""
    return ContactCreated(**ENVELOPE, contact_id=contact, identities=(identity(user),), display_name=name,
                          phones=phones)


async def conversation_of(router: Router, user: str) -> Conversation:
    """`user`'s open conversation on the test channel (there must be one)."""
    conv = await router.engine.stores.conversations.open_for(ConversationKey("acme", "wa-1", user))
    assert conv is not None
    return conv


class ProcessGone(Exception):
    """Stands for the process dying at that point."""


def published_events(router: Router, *, stop_at_first: bool = False) -> list[tuple[str, str, str]]:
    """The conversations' events published from now on, as (customer, change, status). `stop_at_first`: the first
    publish of them raises ProcessGone instead, recorded as a "stopped" change (an attempt that stopped right after
    storing)."""
    events: list[tuple[str, str, str]] = []
    publisher = router.engine.publisher
    publish_together = publisher.publish_together

    async def recorded(sent: Any, topic: Any) -> None:
        if topic is not CONVERSATIONS_EVENTS:
            return await publish_together(sent, topic)
        if stop_at_first and not events:
            events.append((sent[0].external_user_id, "stopped", sent[0].status))
            raise ProcessGone
        events.extend((event.external_user_id, event.change, event.status) for event in sent)
        return await publish_together(sent, topic)

    publisher.publish_together = recorded  # type: ignore[method-assign]
    return events


async def record_batches(infra: InfraSettings, topic: Topic) -> list[list[dict[str, Any]]]:
    """Every record batch the broker holds for `topic`, as stored (one per produce request and partition)."""
    client = AIOKafkaClient(bootstrap_servers=infra.kafka_bootstrap)
    await client.bootstrap()
    try:
        name = topic.name(infra.namespace)
        client.add_topic(name)
        await client.force_metadata_update()
        [node] = [broker.nodeId for broker in client.cluster.brokers()]
        answer = await client.send(node, FetchRequest(
            max_wait_time=0, min_bytes=1, max_bytes=4 * 1024 * 1024, isolation_level=0,
            topics=[(name, [(partition, 0, 1024 * 1024) for partition in range(topic.partitions)])]))
    finally:
        await client.close()
    batches = []
    for _, partitions in answer.topics:
        for partition in partitions:
            records = MemoryRecords(partition[-1])
            while (batch := records.next_batch()) is not None:
                batches.append([json.loads(record.value) for record in batch])
    return batches


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 60.0) -> Any:
    """Poll until `check` returns something truthy (consumers run asynchronously)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def running_router(infra: InfraSettings, consume: bool, **overrides: Any) -> AsyncIterator[Router]:
    clock = FixedClock(T0)
    background = {"sweep_interval_seconds": 3600, "capacity_reconcile_interval_seconds": 3600,
                  "offline_check_interval_seconds": 3600,
                  "tab_counts_repair_interval_seconds": 3600}  # tests run sweeps and upkeep themselves
    settings = RouterSettings(infra=infra, **{**background, **overrides})
    app = create_app(settings, clock=clock, consume=consume, channels=TEST_CHANNELS)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            yield Router(client, app.state.engine, clock, app.state.jwt_secret, infra, app)


@pytest.fixture
async def router(kafka_topics: InfraSettings, mongo: Any, redis: Any) -> AsyncIterator[Router]:
    """HTTP and publishing only: tests feed consumed events straight to the handlers."""
    async with running_router(kafka_topics, consume=False) as running:
        yield running


@pytest.fixture
async def consuming_router(kafka_topics: InfraSettings, mongo: Any, redis: Any) -> AsyncIterator[Router]:
    """Also consuming its topics from the real broker."""
    async with running_router(kafka_topics, consume=True) as running:
        yield running


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
