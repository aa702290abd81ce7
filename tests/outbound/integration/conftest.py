"""The outbound app on the real broker, database and cache, and an agent's HTTP client.

One app per test module (its own namespace: topics, database, Redis keys): starting the service and joining
six consumer groups costs seconds on a loaded machine. Tests in a module use distinct customers, filter what
they read from topics, and run in the module's event loop (`pytestmark = pytest.mark.asyncio(loop_scope=
"module")`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT

from parley_common.auth import issue_token
from parley_common.channels import Channels
from parley_common.kafka import ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_outbound.app import create_app
from parley_outbound.settings import OutboundSettings


@pytest.fixture(scope="module")
def module_infra(infra_endpoints: dict[str, str]) -> InfraSettings:
    return InfraSettings(
        kafka_bootstrap=infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], mongo_uri=infra_endpoints["PARLEY_MONGO_URI"],
        redis_url=infra_endpoints["PARLEY_REDIS_URL"], namespace="t" + uuid.uuid4().hex[:12],
        jwt_secret="outbound-module-secret-of-at-least-32-bytes",  # type: ignore[arg-type]
        log_json=True,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(module_infra: InfraSettings, channels: Channels, fake_provider: FakeProvider) -> AsyncIterator[FastAPI]:
    await ensure_topics(module_infra.kafka_bootstrap, module_infra.namespace)
    # One send consumer: each more member of the group adds seconds of rebalancing to every module's start
    # (the reconcile test's app runs the default several).
    settings = OutboundSettings(infra=module_infra, backoff_base_seconds=0.01, max_attempts=2,
                                media_base_url=f"{fake_provider.base_url}/media", send_consumers=1)
    application = create_app(settings, channels=channels)
    try:
        async with LifespanManager(application, startup_timeout=90, shutdown_timeout=60):
            yield application
    finally:
        mongo = mongo_client(module_infra.mongo_uri, "parley-tests")
        await mongo.drop_database(module_infra.database_name("outbound"))
        await mongo.close()
        redis = redis_client(module_infra.redis_url)
        async for key in redis.scan_iter(match=f"{module_infra.redis_prefix()}*"):
            await redis.delete(key)
        await redis.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(app: FastAPI, module_infra: InfraSettings) -> AsyncIterator[httpx.AsyncClient]:
    token = issue_token(module_infra.jwt_secret.get_secret_value(), TENANT, "agent.dana", ["agent"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        yield http
