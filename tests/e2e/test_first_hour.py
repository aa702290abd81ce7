"""A new contact center's first hour, on all five services as real processes: `make run`'s demo seed (through
the public APIs, idempotent), then README's "First hour" commands run exactly as written (customer writes →
agent goes online → accepts → replies → closes)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from e2e_desk import MANAGER, Desk
from e2e_system import JWT_SECRET, REPO, SANDBOX_SECRET, SERVICES, TENANT, WHATSAPP, System

from parley_common.auth import issue_token

sys.path.insert(0, str(REPO / "deploy" / "local"))
from seed import AGENTS, TEAM, TEMPLATE, seed_demo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
README_WITHIN = 90.0


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield client


def readme_first_hour() -> str:
    """The shell block under README's "### First hour" heading."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### First hour", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found, "README's First hour has no sh block"
    return found.group(1)


def demo_env(system: System, folder: Path) -> None:
    """What `make run` writes to .run/demo.env, for this system (its ports, its tenant's tokens)."""
    values = {**{f"PARLEY_{name.upper()}": system.url(name) for name in SERVICES},
              "PARLEY_TOKEN": issue_token(JWT_SECRET, TENANT, "alice", ["agent"]),
              "PARLEY_BOB_TOKEN": issue_token(JWT_SECRET, TENANT, "bob", ["agent"]),
              "PARLEY_MANAGER_TOKEN": issue_token(JWT_SECRET, TENANT, MANAGER, ["owner", "manager"]),
              "SANDBOX_SECRET": SANDBOX_SECRET}
    (folder / ".run").mkdir(exist_ok=True)
    (folder / ".run" / "demo.env").write_text("".join(f"export {k}='{v}'\n" for k, v in values.items()))


async def test_the_demo_seed_works_at_once_and_a_rerun_changes_nothing(system: System,
                                                                       http: httpx.AsyncClient) -> None:
    desk = Desk(system, http)
    token = issue_token(JWT_SECRET, TENANT, MANAGER, ["owner", "manager"])
    first = seed_demo(system.url("router"), system.url("outbound"), token, WHATSAPP.id)
    assert first == [f"team {TEAM}", *(f"agent {login}" for login in AGENTS), "routing to the team",
                     f"template {TEMPLATE['name']} on {WHATSAPP.id}"]
    assert seed_demo(system.url("router"), system.url("outbound"), token, WHATSAPP.id) == []

    [team] = (await desk.ok("GET", "router", "/v1/teams"))["items"]
    assert (team["id"], team["members"]) == (TEAM, sorted(AGENTS))
    rules = (await desk.ok("GET", "router", "/v1/routing"))["rules"]
    assert [(rule["target_kind"], rule["target_id"]) for rule in rules] == [("team", TEAM)]
    templates = await desk.ok("GET", "outbound", "/v1/templates", "alice", "agent",
                              params={"channel_id": WHATSAPP.id})
    assert [(t["name"], t["status"]) for t in templates] == [(TEMPLATE["name"], "approved")]


async def test_readme_first_hour_runs_as_written(system: System, http: httpx.AsyncClient,
                                                 tmp_path: Path) -> None:
    """Runs after the seed test (module order): the walkthrough relies on the seeded team and routing."""
    demo_env(system, tmp_path)
    script = readme_first_hour()
    for run in (1, 2):  # a second run is a new conversation: the customer's message id is new every time
        done = await asyncio.to_thread(subprocess.run, ["bash", "-e", "-c", script], cwd=tmp_path,
                                       capture_output=True, text=True, timeout=README_WITHIN, check=False)
        assert done.returncode == 0, f"run {run}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        timeline = done.stdout.strip().splitlines()[-1]
        for shown in ('"text":"Where is my parcel?"', '"text":"It left the depot this morning."',
                      '"status":"read"', '"change":"offer_accepted"', '"comment":"parcel on its way"'):
            assert shown in timeline, f"run {run}: {shown} not on the timeline {timeline[:2000]}"

    desk = Desk(system, http)
    listed = await desk.ok("GET", "router", "/v1/conversations", params={"channel_id": "sb-demo",
                                                                        "status": "closed"})
    closed = [c for c in listed["items"] if c["external_user_id"] == "ann"]
    assert len(closed) == 2
    assert {c["closing_note"] for c in closed} == {"parcel on its way"}
    assert {c["assignee"]["id"] for c in closed} == {"alice"}
