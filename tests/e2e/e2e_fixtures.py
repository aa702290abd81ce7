"""Fixtures and a report hook shared by the suites that run the whole system (tests/e2e, tests/faults,
tests/console): each suite's conftest imports them, which registers them there; a module that needs its own
system (other settings, other processes) declares it with `system_fixture`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from e2e_provider import E2EProvider, SmtpServer
from e2e_system import INSTAGRAM, SERVICES, WHATSAPP, System, running_system


@pytest.fixture(scope="module")
def provider() -> Iterator[E2EProvider]:
    fake = E2EProvider(access_token=WHATSAPP.access_token)
    fake.page_tokens.add(INSTAGRAM.page_access_token)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def system_fixture(label: str, *, names: tuple[str, ...] = SERVICES, overrides: dict[str, str] | None = None,
                   prepare: Callable[[System], None] | None = None) -> Any:
    """A module-scoped `system` fixture: the processes `names` running (running_system) with `overrides` in
    every service's environment, `prepare` run on it once ready (seeding through the APIs), logs under a
    temporary folder named `label`. Assign it to `system` in a conftest or test module."""

    @pytest.fixture(scope="module")
    def system(infra_endpoints: dict[str, str], provider: E2EProvider, smtp: SmtpServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
        with running_system(infra_endpoints, provider, smtp.port, tmp_path_factory.mktemp(label), names,
                            overrides) as running:
            if prepare is not None:
                prepare(running)
            yield running

    return system


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain client for the journeys' calls (each names its service's URL and its caller's token)."""
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield client


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """On a failing test, attach every service's log to the report."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        system = getattr(item, "funcargs", {}).get("system")
        if isinstance(system, System):
            report.sections.append(("parley service logs", system.logs()))
    return report
