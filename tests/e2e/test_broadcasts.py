"""A broadcast on the five services as real processes, outbound with two replicas: customers write in (signed
webhooks into ingest), become contacts, and a manager broadcasts a template to them; the replica running it is
killed with SIGKILL mid-broadcast: the other takes it over when the lease ends, and nobody gets the message
twice. A customer who answers opens a conversation that shows the broadcast it answered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_customer import Journey
from e2e_fixtures import system_fixture
from e2e_journey import NotYet, eventually
from e2e_provider import E2EProvider, free_port
from e2e_system import WHATSAPP, Service, System, start, wait_ready
from test_round_trip_budget import settled

# ~3.5 min (its own system of six processes, started with its own settings): make test-long
pytestmark = [pytest.mark.e2e, pytest.mark.slow_soak, pytest.mark.timeout(400)]
AUDIENCE = 150
RATE = 30.0  # per second on the number: the broadcast takes ~5 s, long enough to kill it halfway
OVERRIDES = {"PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND": json.dumps({WHATSAPP.id: RATE}),
             "PARLEY_OUTBOUND_BROADCAST_LEASE_SECONDS": "3", "PARLEY_OUTBOUND_BROADCAST_PAGE_RECORDS": "20",
             "PARLEY_OUTBOUND_BROADCAST_POLL_SECONDS": "1", "PARLEY_OUTBOUND_STUCK_AFTER_SECONDS": "1"}
TEMPLATE = {"name": "spring_sale", "language": "en_US", "category": "marketing", "status": "approved",
            "body": "Hello {{1}}, spring sale: 20% off", "variables": [{"name": "1"}]}


system = system_fixture("broadcast", overrides=OVERRIDES)


@pytest.fixture(scope="module")
def second_outbound(system: System) -> Iterator[Service]:
    """Another outbound replica as the harness starts one (same environment and channel file, its own port and
    instance id: replicas sharing one would make each other's consumer-group members leave)."""
    replica = Service("outbound", free_port(), system.tmp / "outbound-2.log")
    start(replica, system.env | {"PARLEY_OUTBOUND_PORT": str(replica.port), "PARLEY_INSTANCE_ID": "e2e-2"})
    try:
        wait_ready(System(system.namespace, system.provider, {"outbound-2": replica}, system.tmp))
        yield replica
    finally:
        assert replica.process is not None
        os.killpg(replica.process.pid, signal.SIGTERM)
        replica.process.wait(timeout=30)


async def test_a_broadcast_killed_midway_resumes_without_sending_twice(system: System, provider: E2EProvider,
                                                                       http: httpx.AsyncClient,
                                                                       second_outbound: Service,
                                                                       infra_endpoints: dict[str, str]) -> None:
    manager = system.auth("sam", "manager")
    outbound = system.url("outbound")
    customers = [Journey(system, http) for _ in range(AUDIENCE)]
    await asyncio.gather(*(customer.customer_writes("hello") for customer in customers))
    assert (await http.put(f"{outbound}/v1/templates/{WHATSAPP.id}", json=TEMPLATE, headers=manager)).status_code == 200
    body = {"name": "spring", "channel_ids": [WHATSAPP.id], "audience": {"channel_ids": [WHATSAPP.id]},
            "template": {"name": "spring_sale", "language": "en_US",
                         "variables": {"1": {"field": "display_name", "fallback": "friend"}}}}

    async def whole_audience() -> None:
        answer = (await http.post(f"{outbound}/v1/broadcasts/preview", json=body, headers=manager)).json()
        if answer.get("audience_size") != AUDIENCE:
            raise NotYet(answer)
    await eventually(whole_audience, within=120, what="every customer a contact in outbound's audience")

    answering = customers[0]  # their conversation closed before the broadcast: their answer opens a new one
    opened = await eventually(lambda: _open_conversation(answering), within=60, what="the customer's conversation")
    closed = await http.post(f"{system.url('router')}/v1/conversations/{opened['id']}/close", json={},
                             headers=manager)
    assert closed.status_code == 200, closed.text
    created = await http.post(f"{outbound}/v1/broadcasts", json=body, headers=manager)
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    phones = {customer.phone for customer in customers}

    def sent_so_far() -> Counter[str]:
        return Counter(str(b["to"]).lstrip("+") for endpoint, b in list(provider.requests)
                       if endpoint.startswith("graph:") and b.get("type") == "template"
                       and str(b["to"]).lstrip("+") in phones)

    async def halfway() -> None:
        if len(sent_so_far()) < AUDIENCE // 3:
            raise NotYet(len(sent_so_far()))
    await eventually(halfway, within=60, what="a third of the broadcast sent")
    running = (await http.get(f"{outbound}/v1/broadcasts/{broadcast_id}", headers=manager)).json()["runner"]
    first, second = system.services["outbound"], second_outbound
    victim = first if running and running.split(":")[1] == str(first.process and first.process.pid) else second
    assert victim.process is not None and running and running.split(":")[1] == str(victim.process.pid), running
    os.killpg(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    assert len(sent_so_far()) < AUDIENCE
    outbound = (second if victim is first else first).url  # the survivor answers from now on

    async def completed() -> dict[str, Any]:
        view = (await http.get(f"{outbound}/v1/broadcasts/{broadcast_id}", headers=manager)).json()
        if view["state"] != "completed" or view["progress"]["queued"]:
            raise NotYet(view)
        return view
    view = await eventually(completed, within=120, what="the broadcast completed after the restart")
    sent = sent_so_far()
    assert max(sent.values()) == 1, [phone for phone, times in sent.items() if times > 1]  # nobody twice
    progress = view["progress"]
    # a message the kill caught between its provider call and its record fails as outcome unknown, never re-sent
    unknown = progress["failed"].get("send_outcome_unknown", 0)
    assert progress["sent"] + unknown == AUDIENCE and set(progress["failed"]) <= {"send_outcome_unknown"}, progress
    assert len(sent) >= progress["sent"] and len(sent) <= AUDIENCE

    # the router has heard of the broadcast's messages (its group, outbound's topic among them, is at the end)
    await settled(infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], system.namespace, within=120,
                  group="parley-router.events")
    await answering.customer_writes("is the sale on shoes too?")

    conversation = await eventually(lambda: _open_conversation(answering), within=60,
                                    what="the answer opening a conversation")
    assert conversation["answered_broadcast_id"] == broadcast_id
    await eventually(lambda: _replied(http, outbound, manager, broadcast_id), within=60, what="the reply counted")


async def _replied(http: httpx.AsyncClient, outbound: str, manager: dict[str, str], broadcast_id: str) -> None:
    view = (await http.get(f"{outbound}/v1/broadcasts/{broadcast_id}", headers=manager)).json()
    if view["progress"]["replied"] < 1:
        raise NotYet(view["progress"])


async def _open_conversation(customer: Journey) -> dict[str, Any]:
    items = await customer.conversations()
    opened = [item for item in items if item["status"] != "closed"]
    if not opened:
        raise NotYet(items)
    return dict(opened[0])
