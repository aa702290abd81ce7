"""Fixtures and a report hook shared by the suites that run the whole system (tests/e2e, tests/console): each
suite's conftest imports them, which registers them there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_provider import E2EProvider, SmtpServer
from e2e_system import INSTAGRAM, WHATSAPP, System


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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """On a failing test, attach every service's log to the report."""
    report = yield
    if report.failed and call.when in ("call", "setup"):
        system = getattr(item, "funcargs", {}).get("system")
        if isinstance(system, System):
            report.sections.append(("parley service logs", system.logs()))
    return report
