"""MongoDB and Redis over real sockets, and /readyz reflecting what answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from structlog.testing import capture_logs

from parley_common import service
from parley_common.runtime import Runtime
from parley_common.service import build_service
from parley_common.settings import InfraSettings


async def test_mongo_round_trip_keeps_aware_datetimes(mongo: AsyncMongoClient[Any],
                                                      infra_settings: InfraSettings) -> None:
    collection = mongo[infra_settings.database_name("common")]["things"]
    moment = datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)
    await collection.create_index([("tenant_id", 1), ("key", 1)], unique=True)
    await collection.update_one({"tenant_id": "acme", "key": "k"}, {"$set": {"at": moment}}, upsert=True)
    await collection.update_one({"tenant_id": "acme", "key": "k"}, {"$set": {"at": moment}}, upsert=True)
    documents = await collection.find({"tenant_id": "acme"}).to_list()
    assert len(documents) == 1
    assert documents[0]["at"] == moment


async def test_redis_round_trip_with_namespace_prefix(redis: Redis, infra_settings: InfraSettings) -> None:
    key = f"{infra_settings.redis_prefix()}presence:alice"
    await redis.set(key, "online", ex=30)
    assert await redis.get(key) == "online"
    assert 0 < await redis.ttl(key) <= 30


def app_for(settings: InfraSettings) -> Any:
    runtime = Runtime("common", settings, use_mongo=True, use_redis=True)
    return build_service(service="common", title="probe", infra=settings, routers=[],
                         readiness=runtime.readiness(), broker=runtime.broker, on_shutdown=[runtime.close])


async def test_readyz_is_green_when_broker_database_and_cache_answer(kafka_topics: InfraSettings) -> None:
    app = app_for(kafka_topics)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://t") as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz", headers={"X-Correlation-Id": "probe-1"})
        spec = await client.get("/asyncapi.json")
    assert health.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"kafka": "ok", "mongodb": "ok", "redis": "ok"}
    assert ready.headers["X-Correlation-Id"] == "probe-1"
    assert spec.json()["asyncapi"] == "3.0.0"


async def test_readyz_names_what_does_not_answer(kafka_topics: InfraSettings) -> None:
    broken = kafka_topics.model_copy(update={
        "redis_url": "redis://127.0.0.1:1/0",
        "mongo_uri": "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=300",
    })
    app = app_for(broken)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://t") as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["kafka"] == "ok"
    assert checks["redis"].startswith("failed")
    assert checks["mongodb"].startswith("failed")


async def test_a_slow_shutdown_names_the_step_that_held_it(kafka_topics: InfraSettings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "SLOW_STOP_STEP_SECONDS", 0.05)
    runtime = Runtime("common", kafka_topics, use_mongo=False, use_redis=False)

    async def flush_slowly() -> None:
        await asyncio.sleep(0.1)
    app = build_service(service="common", title="probe", infra=kafka_topics, routers=[],
                        readiness=runtime.readiness(), broker=runtime.broker, on_shutdown=[flush_slowly, runtime.close])
    with capture_logs() as logs:
        async with LifespanManager(app):
            pass
    slow = [entry["step"] for entry in logs if entry["event"] == "service_stop_step_slow"]
    assert slow == ["test_a_slow_shutdown_names_the_step_that_held_it.<locals>.flush_slowly"]


async def test_a_broker_stop_that_never_ends_is_left_after_its_bound(kafka_topics: InfraSettings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "BROKER_STOP_SECONDS", 0.2)
    runtime = Runtime("common", kafka_topics, use_mongo=False, use_redis=False)
    app = build_service(service="common", title="probe", infra=kafka_topics, routers=[],
                        readiness=runtime.readiness(), broker=runtime.broker, on_shutdown=[runtime.close])
    with capture_logs() as logs:
        async with LifespanManager(app, shutdown_timeout=10):
            stop = runtime.broker.stop

            async def stop_and_hang(*args: object, **kwargs: object) -> None:
                await stop(*args, **kwargs)
                await asyncio.Event().wait()  # a consumer's closing that never ends
            monkeypatch.setattr(runtime.broker, "stop", stop_and_hang)
    events = [entry["event"] for entry in logs]
    assert "broker_stop_abandoned" in events and events[-1] == "service_stopped", events
