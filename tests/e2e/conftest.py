"""Fixtures of the journeys: the whole system as real processes (see e2e_system.py), one per test module;
every journey uses its own customer so the journeys never see each other.

The services use the shared test Kafka/MongoDB/Redis (`infra_endpoints`). While other runs use the same Kafka
at the same time, a service whose consumer group ids lack the namespace (outbound's, today) can hang joining
them: the readiness error then says so (HINT). To run the journeys meanwhile, point PARLEY_KAFKA_BOOTSTRAP (with
PARLEY_MONGO_URI and PARLEY_REDIS_URL) at a private broker, e.g. `noida-db start --only kafka --kafka-port P`."""

from __future__ import annotations

import asyncio
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from e2e_provider import E2EProvider, SmtpServer, free_port
from e2e_system import (
    SERVICES,
    STOP_WITHIN,
    WHATSAPP,
    Service,
    System,
    channel_file,
    drop_namespace,
    service_env,
    start,
    stop_all,
    wait_ready,
)

from parley_common.kafka import ensure_topics


@pytest.fixture(scope="module")
def provider() -> Iterator[E2EProvider]:
    fake = E2EProvider(access_token=WHATSAPP.access_token).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def system(infra_endpoints: dict[str, str], provider: E2EProvider, smtp: SmtpServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("e2e")
    namespace = "e2e" + uuid.uuid4().hex[:10]
    asyncio.run(ensure_topics(infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], namespace))
    ports = {name: free_port() for name in SERVICES}
    services = {name: Service(name, ports[name], tmp / f"{name}.log") for name in SERVICES}
    system = System(namespace, provider, services, tmp)
    channels = channel_file(tmp / "channels.json", provider.base_url, smtp.port, f"http://127.0.0.1:{ports['ingest']}")
    env = service_env(infra_endpoints, namespace, channels, ports)
    try:
        for service in services.values():
            start(service, env)
        wait_ready(system)
        yield system
    finally:
        killed = stop_all(services)
        if killed:
            warnings.warn(f"e2e: SIGKILLed {killed}: no exit within {STOP_WITHIN}s of SIGTERM", stacklevel=1)
        asyncio.run(drop_namespace(infra_endpoints, namespace))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """On a failing journey, attach every service's log to the report."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        system = getattr(item, "funcargs", {}).get("system")
        if isinstance(system, System):
            report.sections.append(("parley service logs", system.logs()))
    return report
