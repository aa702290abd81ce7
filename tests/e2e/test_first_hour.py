"""A new contact center's first hour, on all five services as real processes: `make run`'s demo seed (through
the public APIs, idempotent), then README's "First hour" commands run exactly as written (customer writes →
agent goes online → accepts → replies → closes), and one whole shift of two agents and a supervisor."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_customer import Journey, TelegramJourney
from e2e_desk import MANAGER, Desk, published_changes, send
from e2e_journey import NotYet, eventually, png_bytes
from e2e_system import JWT_SECRET, REPO, SANDBOX_SECRET, SERVICES, TENANT, WHATSAPP, System

from parley_common.auth import issue_token

sys.path.insert(0, str(REPO / "deploy" / "local"))
from seed import AGENTS, TEAM, TEMPLATE, seed_demo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
README_WITHIN = 90.0
WINDOW = 24 * 3600  # WhatsApp's customer service window
WINDOW_LEFT = 90  # what is left of it when the shift's WhatsApp message arrives
PNG = png_bytes(5, 5)


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


async def test_one_whole_shift(system: System, http: httpx.AsyncClient, infra_endpoints: dict[str, str]) -> None:
    """Seed → a customer writes on WhatsApp, then one on Telegram → alice goes online, accepts the WhatsApp one
    (and opens the customer's card) and declines the Telegram one (bob gets it) → uploads a file and sends it →
    the window closes → she picks a template and sends it → the customer replies → she transfers to bob with a
    comment → bob closes it with a note → the supervisor sees the figures. The WhatsApp message arrives with 90 s
    of its 24 h window left (as a late webhook delivery would): nothing here can move the services'
    clocks."""
    desk = Desk(system, http)
    seed_demo(system.url("router"), system.url("outbound"), issue_token(JWT_SECRET, TENANT, MANAGER, ["manager"]),
              WHATSAPP.id)
    for login in ("alice", "bob"):
        await desk.presence(login, "offline")
    async with desk.heartbeating():
        since = datetime.now(UTC) - timedelta(seconds=WINDOW)  # the period includes the late WhatsApp message
        wa_id, tg_id = await walk_the_shift(desk, system, http, infra_endpoints)
        await supervisor_sees_the_figures(desk, since, wa_id, tg_id)


async def walk_the_shift(desk: Desk, system: System, http: httpx.AsyncClient,
                         infra_endpoints: dict[str, str]) -> tuple[str, str]:
    whatsapp, telegram = Journey(system, http), TelegramJourney(system, http)
    written_at = time.time() - WINDOW + WINDOW_LEFT
    wamid, _ = await whatsapp.customer_writes("My parcel arrived broken, can you send the return label?",
                                              at=written_at)
    wa_conv, _ = await whatsapp.open_conversation_with(wamid)
    tg_message, _ = await telegram.customer_writes("Hi, do you ship to Norway?")
    tg_conv, _ = await telegram.open_conversation_with(tg_message)

    await desk.presence("alice", "online")  # both are offered to her at once
    assert await desk.offered(wa_conv["id"]) == "alice" and await desk.offered(tg_conv["id"]) == "alice"
    assert (await desk.act("alice", wa_conv["id"], "accept")).status_code == 200
    label = await desk.upload("alice", WHATSAPP.id, "return-label.png", PNG, "image/png")
    sent_file = await send(desk, "alice", whatsapp, {"kind": "media", "media_id": label["id"],
                                                     "caption": "Your label"})  # while the window is open
    card = await eventually(lambda: customer_card(desk, wa_conv["id"]), what="the WhatsApp customer's card")
    assert (card["platform_name"], card["phones"]) == ("Dana Li", [f"+{whatsapp.phone}"])
    assert (await desk.act("alice", tg_conv["id"], "decline")).status_code == 200
    await desk.presence("bob", "online")
    assert await desk.offered(tg_conv["id"]) == "bob"
    assert (await desk.act("bob", tg_conv["id"], "accept")).status_code == 200
    answered = await send(desk, "bob", telegram, {"kind": "text", "text": "Yes, in 3 to 5 days."})
    await telegram.outbound_state(answered, "sent")
    await whatsapp.outbound_state(sent_file, "sent")
    assert system.provider.sends_to(whatsapp.phone)[-1]["image"]["caption"] == "Your label"

    await eventually(lambda: window_closed(whatsapp), within=WINDOW_LEFT + 30, what="the WhatsApp window closing")
    refused = await whatsapp.agent_replies("Did the label arrive?")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "template_required")
    [template] = await desk.ok("GET", "outbound", "/v1/templates", "alice", "agent",
                               params={"channel_id": WHATSAPP.id})
    assert [variable["name"] for variable in template["variables"]] == ["1", "2"]
    sent_template = await send(desk, "alice", whatsapp, {
        "kind": "template", "name": template["name"], "language": template["language"],
        "variables": {"1": "Dana", "2": "#4471"}})
    await whatsapp.outbound_state(sent_template, "sent")
    shown = await whatsapp.timeline_entry(wa_conv["id"], lambda e: e.get("message_id") == sent_template,
                                          what="the template on the timeline")
    assert shown["text"] == "Order update\nHi Dana, your order #4471 is on its way.\nParley demo"

    reply, _ = await whatsapp.customer_writes("Got it, thanks!")
    await whatsapp.open_conversation_with(reply)
    transferred = await desk.act("alice", wa_conv["id"], "transfer", kind="agent", id="bob",
                                 comment="customer has the label; please check the refund")
    assert transferred.status_code == 200, transferred.text
    bobs = await desk.ok("GET", "router", "/v1/conversations", "bob", "agent", params={"assignee": "bob"})
    assert {wa_conv["id"], tg_conv["id"]} <= {c["id"] for c in bobs["items"]}
    for conversation_id in (wa_conv["id"], tg_conv["id"]):
        closed = await desk.act("bob", conversation_id, "close", note="refund issued" if conversation_id ==
                                wa_conv["id"] else "shipping info given")
        assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    milestones = ("offered", "offer_accepted", "transferred", "closed")
    changes = [event["change"] for event in await published_changes(
        infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], system.namespace, wa_conv["id"], until="closed")]
    assert [change for change in changes if change in milestones] == list(milestones)
    timeline = await whatsapp.timeline(wa_conv["id"])
    activity = [entry for entry in timeline if entry["kind"] == "activity"]
    assert {"change": "transferred", "comment": "customer has the label; please check the refund"}.items() <= \
        next(entry for entry in activity if entry["change"] == "transferred").items()
    assert next(entry for entry in activity if entry["change"] == "closed")["comment"] == "refund issued"

    return wa_conv["id"], tg_conv["id"]


async def customer_card(desk: Desk, conversation_id: str) -> dict[str, Any]:
    """The card alice opens from the conversation (its contact id, once contacts' events told the router)."""
    contact_id = (await desk.conversation(conversation_id)).get("contact_id")
    if not contact_id:
        raise NotYet("no contact_id on the conversation yet")
    card: dict[str, Any] = await desk.ok("GET", "contacts", f"/v1/contacts/{contact_id}", "alice", "agent")
    return card


async def window_closed(journey: Journey) -> dict[str, Any]:
    window = await journey.window()
    if window["open"]:
        raise NotYet(str(window))
    return window


async def supervisor_sees_the_figures(desk: Desk, since: datetime, whatsapp_id: str, telegram_id: str) -> None:
    """The floor now (both agents online, nothing waiting, nothing left with them), the period's figures (bob
    holds and closed both: two first responses, one of them a day late, and two waits) and the export with
    the closing notes."""
    floor = await desk.ok("GET", "router", "/v1/supervisor/now")
    agents = {agent["login"]: agent for agent in floor["agents"]}
    assert [(agents[login]["presence"], agents[login]["conversations"]) for login in ("alice", "bob")] == [
        ("online", 0), ("online", 0)]
    assert [queue for queue in floor["queues"] if queue["team_id"] == TEAM] == []
    assert {"team_id": TEAM, "online": 2, "away": 0, "offline": 0, "at_capacity": 0} in floor["teams"]
    scraped = await desk.client.get(f"{desk.system.url('router')}/metrics")  # the floor, for Prometheus
    assert f'parley_router_agents{{state="online",team="{TEAM}",tenant="{TENANT}"}} 2.0' in scraped.text

    period = await desk.ok("GET", "router", "/v1/supervisor/period", params={"since": since.isoformat()})
    [bob] = [agent for agent in period["agents"] if agent["login"] == "bob"]
    assert (bob["opened"], bob["closed"]) == (2, 2)
    assert bob["first_response_seconds"]["count"] == bob["wait_seconds"]["count"] == 2
    assert bob["first_response_seconds"]["p90"] > WINDOW - WINDOW_LEFT  # the WhatsApp message came a day late
    assert period["total"]["closed"] >= 2

    export = await desk.call("GET", "router", "/v1/conversations/export", MANAGER, "manager",
                             params={"format": "jsonl", "status": "closed"})
    assert export.status_code == 200, export.text
    rows = {row["id"]: row for row in map(json.loads, export.text.splitlines())
            if row["id"] in (whatsapp_id, telegram_id)}
    assert {row["closing_note"] for row in rows.values()} == {"refund issued", "shipping info given"}
