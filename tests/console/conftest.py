"""Fixtures of the browser tests: the five services and the console as real processes (tests/e2e's system), a
demo team seeded through the console's own API pass-through, and Debian's chromium driven by Playwright (never a
downloaded browser). Screenshots go to .run/console-screens/ (not committed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).parent))

from console_browser import Browser, open_browser
from e2e_fixtures import provider, pytest_runtest_makereport, smtp, system_fixture  # noqa: F401 - registered by being imported
from e2e_system import CONSOLE, SERVICES, WHATSAPP, System

TEAM = "support"
AGENTS = ("alice", "bob")
SUPERVISOR = "sam"
DELIVERY_SLOT = {"name": "delivery_slot", "language": "en_US", "category": "utility", "status": "approved",
                 "body": "We deliver on {{day}} in the {{slot}}.",
                 "variables": [{"name": "day", "type": "date"},
                               {"name": "slot", "type": "dropdown", "options": ["morning", "afternoon"]}]}


def seed(system: System) -> None:
    """A team of two agents that gets every conversation, the channel's approved templates (the fake provider's,
    whose variables are text, and one with a date and a dropdown), saved replies (one with a custom-field
    placeholder): through the console, as a manager's screen would."""
    manager = system.auth(SUPERVISOR, "manager")
    with httpx.Client(base_url=system.url(CONSOLE), headers=manager, timeout=30) as client:
        calls: list[tuple[str, str, dict[str, object] | None]] = [
            ("PUT", f"/v1/teams/{TEAM}", {"name": "Support", "offer_timeout_seconds": 600})]
        calls += [("PUT", f"/v1/agents/{login}", {"teams": [TEAM]}) for login in AGENTS]
        calls += [("PUT", "/v1/routing", {"rules": [{"id": "all", "target_kind": "team", "target_id": TEAM}]}),
                  ("POST", f"/v1/templates/{WHATSAPP.id}/sync", None),
                  ("PUT", f"/v1/templates/{WHATSAPP.id}", DELIVERY_SLOT),
                  ("POST", "/v1/saved-replies", {"name": "On it", "text": "Thanks for waiting, we are on it."}),
                  ("POST", "/v1/saved-replies", {"name": "Order status", "text": "Order {{order}} is on its way."})]
        for method, path, body in calls:
            response = client.request(method, path, json=body)
            assert response.status_code in (200, 201), f"{method} {path}: {response.text}"


system = system_fixture("console", names=(*SERVICES, CONSOLE), prepare=seed)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with open_browser(tmp_path_factory.mktemp("chromium-profile")) as opened:
        yield opened
