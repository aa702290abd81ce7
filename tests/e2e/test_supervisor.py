"""What a supervisor sees, through the public APIs only (issue 14): the floor now (queue and longest wait per
team and channel, agents per team by state, conversations per agent) and as Prometheus gauges; the figures of
a period (first response and wait, opened / closed per agent and team); the export with the customer's name,
phone and labels from contacts' events, streamed."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, Journey
from e2e_desk import Desk
from e2e_journey import NotYet, eventually
from e2e_system import WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
TEAM = "floor"


def queue_of(floor: dict[str, Any]) -> dict[str, Any]:
    return next(q for q in floor["queues"] if (q["team_id"], q["channel_type"]) == (TEAM, "whatsapp"))


def team_of(floor: dict[str, Any]) -> dict[str, Any]:
    return next(team for team in floor["teams"] if team["team_id"] == TEAM)


async def test_the_floor_now_the_figures_of_the_day_and_the_export(system: System, http: httpx.AsyncClient) -> None:
    desk = Desk(system, http)
    await desk.team(TEAM, [AGENT])
    await desk.ok("PUT", "router", f"/v1/agents/{AGENT}", json={"teams": [TEAM], "capacity": {"whatsapp": 1}})
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Where is my refund?")
    conversation, _ = await journey.open_conversation_with(wamid)
    card = await journey.one_contact()
    await desk.ok("POST", "contacts", f"/v1/contacts/{card['id']}/labels", json={"add": ["refunds"]})

    waiting = await desk.ok("GET", "router", "/v1/supervisor/now")
    assert queue_of(waiting)["queued"] == 1 and queue_of(waiting)["longest_wait_seconds"] >= 0
    assert (team_of(waiting)["offline"], team_of(waiting)["online"]) == (1, 0)

    async with desk.heartbeating():
        await desk.presence(AGENT, "online")
        assert await desk.offered(conversation["id"]) == AGENT
        accepted = await desk.act(AGENT, conversation["id"], "accept")
        assert accepted.status_code == 200, accepted.text
        serving = await desk.ok("GET", "router", "/v1/supervisor/now")
        assert not [q for q in serving["queues"] if q["team_id"] == TEAM]
        assert (team_of(serving)["online"], team_of(serving)["at_capacity"]) == (1, 1)
        [alice] = [agent for agent in serving["agents"] if agent["login"] == AGENT]
        assert (alice["conversations"], alice["per_channel"], alice["at_capacity"]) == (1, {"whatsapp": 1}, True)
        metrics = (await http.get(f"{system.url('router')}/metrics")).text
        assert f'parley_router_agent_conversations{{agent="{AGENT}",tenant="acme"}} 1.0' in metrics
        assert f'parley_router_agents{{state="at_capacity",team="{TEAM}",tenant="acme"}} 1.0' in metrics

        reply = await journey.agent_replies("The refund left today.")
        assert reply.status_code == 202, reply.text
        await journey.outbound_state(reply.json()["message_id"], "sent")
        await eventually(lambda: answered(desk, conversation["id"]), within=30.0, what="the reply answering it")
        closed = await desk.act(AGENT, conversation["id"], "close", note="refund sent")
        assert closed.status_code == 200, closed.text

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    day = await desk.ok("GET", "router", "/v1/supervisor/period", params={"since": since})
    [team] = [team for team in day["teams"] if team["team_id"] == TEAM]
    [agent] = [agent for agent in day["agents"] if agent["login"] == AGENT]
    for figures in (team, agent):
        assert (figures["opened"], figures["closed"]) == (1, 1)
        assert figures["first_response_seconds"]["count"] == 1 and figures["first_response_seconds"]["p90"] > 0
        assert figures["wait_seconds"]["count"] == 1 and figures["wait_seconds"]["median"] >= 0
    bad = await desk.call("GET", "router", "/v1/supervisor/period", "sam", "manager",
                          params={"since": since, "until": since})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_period"
    epoch = await desk.call("GET", "router", "/v1/supervisor/period", "sam", "manager", params={"until": "0"})
    assert epoch.status_code == 422 and epoch.json()["error"]["code"] == "validation_failed"
    assert (await desk.call("GET", "router", "/v1/supervisor/now", AGENT, "agent")).status_code == 403

    export = await desk.call("GET", "router", "/v1/conversations/export", "sam", "manager",
                             params={"format": "csv", "status": "closed", "channel_id": WHATSAPP.id})
    rows = [row for row in csv.DictReader(io.StringIO(export.text)) if row["id"] == conversation["id"]]
    assert [(row["contact_id"], row["customer_name"], row["customer_phone"], row["labels"]) for row in rows] == [
        (card["id"], "Dana Li", f"+{journey.phone}", "refunds")]


async def answered(desk: Desk, conversation_id: str) -> None:
    conv = await desk.conversation(conversation_id)
    if conv["first_response_seconds"] is None:
        raise NotYet(str(conv))
