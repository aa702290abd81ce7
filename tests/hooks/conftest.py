"""Fixtures of the hooks tests: a receiver over real HTTP that can fail, time out and recover per event, the hooks
app on the real Kafka and MongoDB, and events published on its input topics."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from known_channels import TEST_CHANNELS
from local_server import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from parley_common.auth import issue_token
from parley_common.events.conversations import ConversationChanged
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import Topic
from parley_hooks.app import create_app
from parley_hooks.domain.signing import verify
from parley_hooks.settings import HooksSettings

# What the receiver answers one request: "ok" (204), "fail" (500), "slow" (answers after the sender gave up).
Behaviour = Callable[[dict[str, Any], int], str]


@dataclass
class Received:
    event: dict[str, Any]
    body: bytes
    headers: dict[str, str]
    answer: str
    signature_valid: bool


@dataclass
class Receiver:
    """Records every request; `behaviour(event, n)` decides the answer, n = how often this event came before."""

    secret: str = ""
    behaviour: Behaviour = lambda event, seen: "ok"
    slow_seconds: float = 2.0
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            event = json.loads(body)
            seen = sum(1 for earlier in self.requests if earlier.event["id"] == event["id"])
            answer = self.behaviour(event, seen)
            valid = verify(self.secret, request.headers.get("parley-timestamp", ""), body,
                           request.headers.get("parley-signature", ""), int(time.time()))
            self.requests.append(Received(event, body, dict(request.headers), answer, valid))
            if answer == "slow":
                await asyncio.sleep(self.slow_seconds)
            return Response(status_code=500 if answer == "fail" else 204)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def accepted(self) -> list[dict[str, Any]]:
        return [received.event for received in self.requests if received.answer == "ok"]


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serve_asgi(receiver.app()) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver


@dataclass
class HooksHarness:
    client: httpx.AsyncClient
    settings: HooksSettings
    manager: dict[str, str]
    publish: Callable[[Envelope, Topic], Awaitable[None]]


def conversation_event(user: str, number: int, tenant: str = "acme", channel: str = "wa-main") -> ConversationChanged:
    now = datetime.now(UTC)
    return ConversationChanged(
        occurred_at=now, tenant_id=tenant, correlation_id=f"c-{user}-{number}", channel_id=channel,
        external_user_id=user, conversation_id=f"conv-{user}", change="note_added", status="queued",
        comment=f"step {number}", changed_at=now)


def customer_message(user: str = "15550001111") -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id="acme", correlation_id="c-message", channel_id="wa-main", external_user_id=user,
        channel_type="whatsapp", customer=Customer(wa_id=user), provider_message_id=f"wamid.{now.timestamp()}",
        provider_timestamp=now, received_at=now, parts=(TextPart(text="hello"),))


@pytest.fixture
def hooks_app(kafka_topics: InfraSettings, mongo: Any) -> Callable[..., Any]:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[HooksHarness]:
        settings = HooksSettings(infra=kafka_topics, **{
            "allow_private_targets": True, "allow_plain_http": True, "request_timeout_seconds": 0.5,
            "retry_base_seconds": 0.05, "retry_max_seconds": 0.4, "poll_seconds": 0.1, **overrides})
        app = create_app(settings, channels=TEST_CHANNELS)
        secret = kafka_topics.jwt_secret.get_secret_value()
        manager = {"Authorization": f"Bearer {issue_token(secret, 'acme', 'sam', ['manager'])}"}
        broker = make_broker(kafka_topics.kafka_bootstrap, "test-publisher")
        await broker.connect()
        publisher = EventPublisher(broker, kafka_topics.namespace)
        try:
            async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
                    yield HooksHarness(client, settings, manager, publisher.publish)
        finally:
            await broker.stop()

    return start


async def eventually(check: Callable[[], Any], within: float = 30.0) -> Any:
    """Polls `check` (plain or async) until it answers something truthy (and answers that), or fails after
    `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s; last: {result!r}")
        await asyncio.sleep(0.1)
