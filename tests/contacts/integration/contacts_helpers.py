"""Shared by the contacts integration tests: messages, tokens, an app client, an events reader."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from known_channels import TEST_CHANNELS

from parley_common.auth import issue_token
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.settings import InfraSettings
from parley_common.topics import CONTACTS_EVENTS
from parley_contacts.app import create_app
from parley_contacts.settings import ContactsSettings

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def message(external_user_id: str, *, tenant: str = "acme", channel: str = "wa-main", name: str | None = "Ana",
            at: datetime = T0, phone: str | None = None, event_id: uuid.UUID | None = None) -> MessageReceived:
    return MessageReceived(
        event_id=event_id or uuid.uuid4(), occurred_at=at, tenant_id=tenant, correlation_id="corr",
        channel_id=channel, external_user_id=external_user_id, channel_type="whatsapp",
        customer=Customer(wa_id=phone or external_user_id, profile_name=name),
        provider_message_id=f"wamid.{uuid.uuid4()}", provider_timestamp=at, received_at=at + timedelta(seconds=1),
        parts=(TextPart(text="hi"),))


SECRET = {"value": "test-secret"}  # set from the test's InfraSettings by the autouse fixture in conftest.py


class auth(Mapping[str, str]):
    """Authorization headers, signed with the current test's JWT secret when they are sent."""

    def __init__(self, tenant: str = "acme", login: str = "ana", roles: tuple[str, ...] = ("agent",)) -> None:
        self._claims = (tenant, login, list(roles))

    def _headers(self) -> dict[str, str]:
        tenant, login, roles = self._claims
        return {"Authorization": f"Bearer {issue_token(SECRET['value'], tenant, login, roles)}"}

    def __getitem__(self, key: str) -> str:
        return self._headers()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return 1


MANAGER = auth(login="boss", roles=("manager",))
AGENT = auth()


@asynccontextmanager
async def running(infra: InfraSettings, **overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(ContactsSettings(infra=infra, **overrides), channels=TEST_CHANNELS)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            yield app, client


async def read_events(infra: InfraSettings, count: int, wait: float = 20) -> list[Any]:
    """The first `count` records of the contacts topic, parsed."""
    consumer = AIOKafkaConsumer(CONTACTS_EVENTS.name(infra.namespace), bootstrap_servers=infra.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{uuid.uuid4().hex}")
    await consumer.start()
    events: list[Any] = []
    try:
        async with asyncio.timeout(wait):
            while len(events) < count:
                record = await consumer.getone()
                events.append(CONTACTS_EVENTS.parse(record.value))
    finally:
        await consumer.stop()
    return events
