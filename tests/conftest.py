"""Shared fixtures: real local infrastructure (started on the test profile's ports when the environment
does not name an existing Kafka/MongoDB/Redis), and a fresh namespace per test so tests never see each
other's topics, databases or Redis keys."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers (known_channels) importable by every test
import counted_redis  # noqa: E402  (needs the path above)
import hung_tasks  # noqa: E402
import infra_choice  # noqa: E402
import infra_containers  # noqa: E402

ENV_KEYS = ("PARLEY_KAFKA_BOOTSTRAP", "PARLEY_MONGO_URI", "PARLEY_REDIS_URL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def infra_endpoints() -> Iterator[dict[str, str]]:
    """Kafka, MongoDB and Redis addresses: from the environment when all are set (an existing installation, or
    `make test`'s local servers); else as PARLEY_TEST_INFRA chooses (tests/infra_choice.py): containers started
    for the session (tests/infra_containers.py), or the local test-profile servers, started if needed."""
    if all(os.environ.get(key) for key in ENV_KEYS):
        yield {key: os.environ[key] for key in ENV_KEYS}
        return
    try:
        choice = infra_choice.choose(os.environ.get(infra_choice.SETTING),
                                     lambda: infra_choice.docker_answers(infra_choice.docker_address(os.environ)))
    except infra_choice.InfraChoiceError as problem:
        pytest.exit(str(problem), 2)
    if choice == infra_choice.CONTAINERS:
        with ExitStack() as stack:
            endpoints = infra_containers.start(stack)
            os.environ.update(endpoints)  # processes the tests start (tests/e2e's services) use the same servers
            yield endpoints
        return
    yield local_endpoints()


def local_endpoints() -> dict[str, str]:
    infra = [sys.executable, str(REPO / "deploy/local/infra.py")]
    subprocess.run([*infra, "start", "--profile", "test"], check=True, stdout=subprocess.DEVNULL)
    output = subprocess.run([*infra, "env", "--profile", "test"], check=True, capture_output=True, text=True).stdout
    endpoints = {}
    for line in output.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        endpoints[key] = value.strip("'")
    return endpoints


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def infra_settings(infra_endpoints: dict[str, str], namespace: str) -> InfraSettings:
    return InfraSettings(
        kafka_bootstrap=infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"],
        mongo_uri=infra_endpoints["PARLEY_MONGO_URI"],
        redis_url=infra_endpoints["PARLEY_REDIS_URL"],
        namespace=namespace,
        jwt_secret="test-secret-of-at-least-32-bytes-long",  # type: ignore[arg-type]
        log_json=True,
    )


@pytest.fixture
async def kafka_topics(infra_settings: InfraSettings) -> AsyncIterator[InfraSettings]:
    """Every registry topic created under this test's namespace, deleted afterwards so the broker stays small."""
    await ensure_topics(infra_settings.kafka_bootstrap, infra_settings.namespace)
    yield infra_settings
    await drop_namespace_topics(infra_settings.kafka_bootstrap, infra_settings.namespace)


@pytest.fixture
async def mongo(infra_settings: InfraSettings) -> AsyncIterator[AsyncMongoClient[Any]]:
    client = mongo_client(infra_settings.mongo_uri, "parley-tests")
    yield client
    for name in await client.list_database_names():
        if name.endswith(f"_{infra_settings.namespace}"):
            await client.drop_database(name)
    await client.close()


@pytest.fixture
async def counted_cache(infra_settings: InfraSettings, redis: Redis) -> AsyncIterator[counted_redis.CountedRedis]:
    """A client of the test's Redis whose sends are noted (tests/counted_redis.py); `redis` deletes the keys."""
    counted = counted_redis.counted_redis(infra_settings.redis_url)
    yield counted
    await counted.client.aclose()


@pytest.fixture
async def redis(infra_settings: InfraSettings) -> AsyncIterator[Redis]:
    client = redis_client(infra_settings.redis_url)
    yield client
    async for key in client.scan_iter(match=f"{infra_settings.redis_prefix()}*"):
        await client.delete(key)
    await client.aclose()


HUNG_TASKS_SHOWN_BEFORE_THE_TIMEOUT_S = 10


@pytest.fixture(autouse=True)
def _hung_tasks_shown(request: pytest.FixtureRequest) -> None:
    """An asyncio test that hangs prints what each of its tasks awaits shortly before pytest-timeout stops it
    (a timer on the loop the test runs on: its module's, for a module that shares one)."""
    if inspect.iscoroutinefunction(request.function):
        marker = request.node.get_closest_marker("asyncio")
        scope = marker.kwargs.get("loop_scope", "function") if marker else "function"
        request.getfixturevalue(f"_hung_tasks_timer_{scope}")


def _hung_tasks_timer(loop_scope: str) -> Any:
    @pytest_asyncio.fixture(name=f"_hung_tasks_timer_{loop_scope}", loop_scope=loop_scope)
    async def timer(request: pytest.FixtureRequest) -> AsyncIterator[None]:
        marker = request.node.get_closest_marker("timeout")
        timeout = float(marker.args[0] if marker and marker.args else request.config.getini("timeout") or 0)
        if timeout <= HUNG_TASKS_SHOWN_BEFORE_THE_TIMEOUT_S:
            yield
            return
        loop = asyncio.get_running_loop()

        def show() -> None:
            print(f"\n{request.node.nodeid} still runs; its tasks await:\n{hung_tasks.report(loop)}",
                  file=sys.stderr, flush=True)
        handle = loop.call_later(timeout - HUNG_TASKS_SHOWN_BEFORE_THE_TIMEOUT_S, show)
        yield
        handle.cancel()
    return timer


_hung_tasks_timer_function = _hung_tasks_timer("function")
_hung_tasks_timer_module = _hung_tasks_timer("module")
