"""Fixtures of the journeys: the whole system as real processes (see e2e_system.py), one per test module;
every journey uses its own customer so the journeys never see each other.

The services use the shared test Kafka/MongoDB/Redis (`infra_endpoints`). While other runs use the same Kafka
at the same time, a service whose consumer group ids lack the namespace (outbound's, today) can hang joining
them: the readiness error then says so (HINT). To run the journeys meanwhile, point PARLEY_KAFKA_BOOTSTRAP (with
PARLEY_MONGO_URI and PARLEY_REDIS_URL) at a private broker, e.g. `noida-db start --only kafka --kafka-port P`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from e2e_provider import E2EProvider, SmtpServer
from e2e_system import WHATSAPP, System, running_system


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
    with running_system(infra_endpoints, provider, smtp.port, tmp_path_factory.mktemp("e2e")) as system:
        yield system


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """On a failing journey, attach every service's log to the report."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        system = getattr(item, "funcargs", {}).get("system")
        if isinstance(system, System):
            report.sections.append(("parley service logs", system.logs()))
    return report
