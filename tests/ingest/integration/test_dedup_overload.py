"""Overload never weakens de-duplication (issue 17): when the duplicate check cannot be made — Redis slow, or the
client's connection pool exhausted — the webhook is answered 503 before anything is published, and the
provider's retry is published once; over the in-flight limit a webhook is answered 503 at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import BlockingConnectionPool, Redis
from tcp_proxy import TcpProxy

from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_common.tasks import running
from parley_common.topics import INBOUND_MESSAGES
from parley_ingest.adapters.cache import SharedCache
from parley_ingest.adapters.dedup import DedupStore, DedupUnavailable
from parley_ingest.app import create_app
from parley_ingest.settings import IngestSettings

WA = "/webhooks/whatsapp/wa-main"


@pytest.fixture
async def slow_redis(kafka_topics: InfraSettings) -> AsyncIterator[TcpProxy]:
    """The real Redis behind a proxy that holds back every command containing MGET (the duplicate check) for 3 s
    while `slow` is set; everything else passes at once."""
    host, _, port = kafka_topics.redis_url.removeprefix("redis://").partition("/")[0].partition(":")
    async with TcpProxy(host, int(port), hold=lambda chunk: b"MGET" in chunk.upper(), delay=3.0) as proxy:
        yield proxy


async def test_a_slow_duplicate_check_is_answered_503_before_publishing(kafka_topics: InfraSettings, kit, topics,
                                                                        slow_redis: TcpProxy, redis: Redis) -> None:
    through_proxy = kafka_topics.model_copy(update={"redis_url": f"redis://127.0.0.1:{slow_redis.port}/0"})
    app = create_app(IngestSettings(infra=through_proxy, dedup_check_timeout_seconds=0.5), channels=kit.channels)
    body = kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]]))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest"
    ) as client:
        shed = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert shed.status_code == 503, shed.text
        assert shed.json()["error"]["code"] == "dedup_unavailable"
        assert await topics.records(INBOUND_MESSAGES) == []
        assert [key async for key in redis.scan_iter(match=f"{kafka_topics.redis_prefix()}ingest:dedup:*")] == []

        slow_redis.slow = False  # the provider retries once Redis answers again: published once, then a duplicate
        retried = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert retried.json()["published"] == 1, retried.text
        again = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert again.json()["duplicates"] == 1, again.text
    assert len(await topics.records(INBOUND_MESSAGES)) == 1


async def test_an_exhausted_connection_pool_makes_the_check_unavailable_instead_of_skipping_it(
        infra_settings: InfraSettings) -> None:
    client = redis_client(infra_settings.redis_url)
    pool = client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    # as if the pool's connections were all busy under overload for longer than a command waits for one
    pool.max_connections, pool.timeout = 1, 0.5
    store = DedupStore(SharedCache(client), ttl_seconds=60, check_timeout_seconds=5.0)
    try:
        async with running(client.blpop([f"{infra_settings.redis_prefix()}never-pushed"], timeout=3)):
            await asyncio.sleep(0.2)  # the only connection is now waiting in BLPOP
            with pytest.raises(DedupUnavailable):
                await store.already_seen([f"{infra_settings.redis_prefix()}ingest:dedup:some-key"])
    finally:
        await client.aclose()


async def test_a_webhook_over_the_in_flight_limit_is_answered_503_at_once(kafka_topics: InfraSettings, kit, topics,
                                                                         slow_redis: TcpProxy) -> None:
    """One webhook held up (its duplicate check waits on a slow Redis) fills a limit of one: the next is answered
    503 `overloaded` at once, publishes nothing, and is accepted once the first is done."""
    through_proxy = kafka_topics.model_copy(update={"redis_url": f"redis://127.0.0.1:{slow_redis.port}/0"})
    app = create_app(IngestSettings(infra=through_proxy, max_in_flight=1, dedup_check_timeout_seconds=10),
                     channels=kit.channels)
    first, second = (kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")[name]]))
                     for name in ("text", "image"))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest"
    ) as client:
        held = asyncio.create_task(client.post(WA, content=first, headers=kit.meta_headers(first)))
        await asyncio.sleep(0.5)  # the first is waiting on its duplicate check
        started = time.monotonic()
        shed = await client.post(WA, content=second, headers=kit.meta_headers(second))
        assert shed.status_code == 503, shed.text
        assert shed.json()["error"]["code"] == "overloaded"
        assert time.monotonic() - started < 1.0  # at once, not after the first
        assert (await held).status_code == 200
        slow_redis.slow = False
        retried = await client.post(WA, content=second, headers=kit.meta_headers(second))
        assert retried.json()["published"] == 1, retried.text
    assert len(await topics.records(INBOUND_MESSAGES)) == 2
