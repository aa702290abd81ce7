"""POST /v1/messages when the cache is away (real Redis behind a proxy that is unplugged, then plugged back) or
its connection pool is all in use for longer than a command waits for a connection: 503 `cache_unavailable` with
Retry-After — never a 500 — and the same request answered as before once it is back.
The load test that found it: 7 HTTP 500s among 100 agents' replies/s alongside 250 inbound msg/s (issue 17)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from outbound_helpers import TENANT
from redis.asyncio import BlockingConnectionPool, Redis
from tcp_proxy import TcpProxy

from parley_common.auth import issue_token
from parley_common.channels import Channels
from parley_common.errors import RETRY_AFTER_SECONDS
from parley_common.kafka import ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import CONNECTION_WAIT_SECONDS, MAX_CONNECTIONS
from parley_common.settings import InfraSettings
from parley_common.tasks import running
from parley_outbound.app import create_app
from parley_outbound.settings import OutboundSettings


@pytest.fixture
async def cache_proxy(infra_endpoints: dict[str, str]) -> AsyncIterator[TcpProxy]:
    host, _, port = infra_endpoints["PARLEY_REDIS_URL"].removeprefix("redis://").partition("/")[0].partition(":")
    async with TcpProxy(host, int(port)) as proxy:
        yield proxy


@asynccontextmanager
async def outbound_behind(cache: TcpProxy, infra_endpoints: dict[str, str], channels: Channels,
                          **settings: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, InfraSettings]]:
    """Outbound whose cache is the real Redis behind `cache`, and an agent's client of its API; its database is
    dropped after."""
    infra = InfraSettings(
        kafka_bootstrap=infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], mongo_uri=infra_endpoints["PARLEY_MONGO_URI"],
        redis_url=f"redis://127.0.0.1:{cache.port}/0", namespace="t" + uuid.uuid4().hex[:12],
        jwt_secret="outbound-module-secret-of-at-least-32-bytes",  # type: ignore[arg-type]
    )
    await ensure_topics(infra.kafka_bootstrap, infra.namespace)
    app = create_app(OutboundSettings(infra=infra, send_consumers=1, **settings), channels=channels)
    token = issue_token(infra.jwt_secret.get_secret_value(), TENANT, "agent.dana", ["agent"])
    try:
        async with LifespanManager(app, startup_timeout=90, shutdown_timeout=60), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                headers={"Authorization": f"Bearer {token}"}) as client:
            yield app, client, infra
    finally:
        mongo = mongo_client(infra.mongo_uri, "parley-tests")
        await mongo.drop_database(infra.database_name("outbound"))
        await mongo.close()


async def test_a_send_while_the_cache_is_away_is_answered_503_with_retry_after(
        infra_endpoints: dict[str, str], channels: Channels, cache_proxy: TcpProxy) -> None:
    send = {"channel_id": "wa-main", "recipient": {"external_user_id": "447700900999"},
            "content": {"kind": "text", "text": "Are you still there?"}}
    async with outbound_behind(cache_proxy, infra_endpoints, channels) as (app, client, infra):
        before = await client.post("/v1/messages", json=send)
        assert (before.status_code, before.json()["error"]["code"]) == (422, "no_approved_template"), before.text

        await cache_proxy.unplug()
        away = await client.post("/v1/messages", json=send)
        assert away.status_code == 503, away.text
        assert away.json()["error"]["code"] == "cache_unavailable"
        assert away.json()["error"]["details"] == {"dependency": "cache"}
        assert away.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)

        await cache_proxy.plug()
        back = await client.post("/v1/messages", json=send)
        assert (back.status_code, back.json()["error"]["code"]) == (422, "no_approved_template"), back.text

        # every connection of the client's pool busy for longer than a command waits for one
        # (parley_common.redis.CONNECTION_WAIT_SECONDS, shortened here); the pool is one connection, held by a
        # blocking read
        cache: Redis = app.state.sender.projections._redis  # the service's own client, shared by its API and consumers
        pool = cache.connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        pool.max_connections, pool.timeout = 1, 0.5
        try:
            async with running(cache.blpop([f"{infra.redis_prefix()}never-pushed"], timeout=5)):
                await asyncio.sleep(0.3)  # the only connection now waits in BLPOP
                dry = await client.post("/v1/messages", json=send)
                assert (dry.status_code, dry.json()["error"]["code"]) == (503, "cache_unavailable"), dry.text
        finally:
            pool.max_connections, pool.timeout = MAX_CONNECTIONS, CONNECTION_WAIT_SECONDS

    documented = app.openapi()["paths"]["/v1/messages"]["post"]["responses"]["503"]
    assert "cache_unavailable" in documented["description"] and "Retry-After" in documented["headers"]


async def test_a_send_over_the_in_flight_limit_is_answered_503_overloaded_at_once(
        infra_endpoints: dict[str, str], channels: Channels) -> None:
    """One send held up (its cache commands wait on a slow Redis) fills a limit of one: the next is answered 503
    `overloaded` at once with Retry-After, and answered as before once the first is done — the agents' replies
    beyond what a process takes are shed, not queued into their clients' time-outs (issue 17)."""
    host, _, port = infra_endpoints["PARLEY_REDIS_URL"].removeprefix("redis://").partition("/")[0].partition(":")
    async with TcpProxy(host, int(port), hold=lambda _: True, delay=2.0) as slow_cache:
        slow_cache.slow = False
        send = {"channel_id": "wa-main", "recipient": {"external_user_id": "447700900998"},
                "content": {"kind": "text", "text": "Are you still there?"}}
        async with outbound_behind(slow_cache, infra_endpoints, channels, max_sends_in_flight=1) as (_, client, _):
            slow_cache.slow = True
            held = asyncio.create_task(client.post("/v1/messages", json=send))
            await asyncio.sleep(0.5)  # the first waits on the cache
            started = asyncio.get_running_loop().time()
            shed = await client.post("/v1/messages", json=send)
            assert (shed.status_code, shed.json()["error"]["code"]) == (503, "overloaded"), shed.text
            assert shed.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert asyncio.get_running_loop().time() - started < 1.0  # at once, not after the first
            first = await held
            assert (first.status_code, first.json()["error"]["code"]) == (422, "no_approved_template"), first.text
            slow_cache.slow = False
            again = await client.post("/v1/messages", json=send)
            assert (again.status_code, again.json()["error"]["code"]) == (422, "no_approved_template"), again.text
