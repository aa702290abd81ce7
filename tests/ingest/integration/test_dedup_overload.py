"""Overload never weakens de-duplication (issue 17): when the duplicate check cannot be made — Redis slow, or the
client's connection pool exhausted — the webhook is answered 503 before anything is published, and the
provider's retry is published once; over the in-flight limit a webhook is answered 503 at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from parley_ingest.adapters.dedup import DedupStore, DedupUnavailable
from parley_ingest.app import create_app
from parley_ingest.settings import IngestSettings

WA = "/webhooks/whatsapp/wa-main"


class SlowReads:
    """A TCP proxy in front of the real Redis that holds back every command containing MGET (the duplicate
    check) for `delay` seconds while `slow` is set; everything else passes at once."""

    def __init__(self, target_host: str, target_port: int, delay: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.slow = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> SlowReads:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        for pipe in (self._pipe(reader, upstream_writer, hold=True), self._pipe(upstream_reader, writer, hold=False)):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                if hold and self.slow and b"MGET" in chunk.upper():
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        writer.close()


@pytest.fixture
async def slow_redis(kafka_topics: InfraSettings) -> AsyncIterator[SlowReads]:
    host, _, port = kafka_topics.redis_url.removeprefix("redis://").partition("/")[0].partition(":")
    async with SlowReads(host, int(port), delay=3.0) as proxy:
        yield proxy


async def test_a_slow_duplicate_check_is_answered_503_before_publishing(kafka_topics: InfraSettings, kit, topics,
                                                                        slow_redis: SlowReads, redis: Redis) -> None:
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
    client.connection_pool.max_connections = 1  # as if the pool's connections were all busy under overload
    store = DedupStore(client, ttl_seconds=60, check_timeout_seconds=5.0)
    holder = asyncio.create_task(client.blpop([f"{infra_settings.redis_prefix()}never-pushed"], timeout=3))
    try:
        await asyncio.sleep(0.2)  # the only connection is now waiting in BLPOP
        with pytest.raises(DedupUnavailable):
            await store.already_seen([f"{infra_settings.redis_prefix()}ingest:dedup:some-key"])
    finally:
        holder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holder
        await client.aclose()


async def test_a_webhook_over_the_in_flight_limit_is_answered_503_at_once(kafka_topics: InfraSettings, kit, topics,
                                                                         slow_redis: SlowReads) -> None:
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
