"""Redis is a cache: restarted empty under a staffed desk, the router's capacity slots are rebuilt from MongoDB
before anyone is offered more, agents come back online with their consoles' next heartbeat, and a webhook whose
de-duplication key was lost is still on its timeline once. Through the public APIs only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from e2e_customer import AGENT, TEAM, Journey, inbound_entries, new_wamid
from e2e_desk import Desk
from e2e_journey import NotYet, eventually, whatsapp_text
from e2e_system import WHATSAPP, System, staff_the_tenant, wait_ready
from fault_servers import kill_server, local_server, start_again

DESK, AGENTS, CAPACITY = "cache-desk", ("carol", "dave"), 2
BEFORE, AFTER = 3, 4  # conversations before and after the restart: 7 for 4 slots


async def held_by_agent(desk: Desk) -> dict[str, list[str]]:
    """The conversations each of the desk's agents holds (offered or accepted), as the router stores them: id and
    customer (two of one customer would be a conversation opened twice)."""
    held: dict[str, list[str]] = {login: [] for login in AGENTS}
    for login in AGENTS:
        page = await desk.ok("GET", "router", "/v1/conversations", params={"assignee": login, "status": "assigned",
                                                                             "limit": 200})
        held[login] = [f"{conversation['id']} ({conversation['external_user_id']})" for conversation in page["items"]]
    return held


async def holding(desk: Desk, total: int) -> dict[str, list[str]]:
    """Wait until the desk's agents hold `total` conversations, failing at once if anyone holds more than
    CAPACITY or a conversation is held twice."""
    async def probe() -> dict[str, list[str]]:
        held = await held_by_agent(desk)
        over = {login: ids for login, ids in held.items() if len(ids) > CAPACITY}
        assert not over, f"over capacity {CAPACITY}: {over}"
        every = [conversation for ids in held.values() for conversation in ids]
        assert len(every) == len(set(every)), f"a conversation held twice: {held}"
        if len(every) != total:
            raise NotYet(f"{len(every)} held: {held}")
        return held

    return await eventually(probe, within=60.0, what=f"{total} conversations held by {AGENTS}")


async def restart_cache_under_a_desk(system: System, endpoints: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        desk = Desk(system, client)
        await desk.team(DESK, list(AGENTS))  # and every new conversation routed to it
        try:
            for login in AGENTS:
                await desk.ok("PUT", "router", f"/v1/agents/{login}",
                              json={"teams": [DESK], "capacity": {"whatsapp": CAPACITY}})
                await desk.presence(login, "online")
            first, first_wamid = Journey(system, client), new_wamid()
            first_webhook = whatsapp_text(first.phone, first_wamid, "before the restart", int(time.time()),
                                          WHATSAPP.phone_number_id)
            await first.deliver(first_webhook)
            for _ in range(BEFORE - 1):
                await Journey(system, client).customer_writes("before the restart")
            await holding(desk, BEFORE)

            server = local_server(endpoints, "redis")
            await asyncio.to_thread(kill_server, server)
            await asyncio.to_thread(start_again, server)  # empty: nothing kept
            await asyncio.to_thread(wait_ready, system)
            for login in AGENTS:  # their consoles' next heartbeat
                await desk.presence(login, "online")
            await first.deliver(first_webhook)  # the provider's retry of it: its de-duplication key is gone
            for _ in range(AFTER):
                await Journey(system, client).customer_writes("after the restart")
            held = await holding(desk, len(AGENTS) * CAPACITY)
            await asyncio.sleep(2.0)  # what a late take would do shows now
            assert await held_by_agent(desk) == held

            async def once_on_its_timeline() -> None:
                conversations = await first.conversations()
                shown = [entry.get("provider_message_id") for conversation in conversations
                         for entry in inbound_entries(await first.timeline(conversation["id"]))]
                assert shown.count(first_wamid) <= 1, f"on the timeline {shown.count(first_wamid)} times"
                if len(conversations) != 1 or first_wamid not in shown:
                    raise NotYet(f"{len(conversations)} conversations, {shown}")

            await eventually(once_on_its_timeline, within=60.0, what="the repeated webhook once on its timeline")
            return held
        finally:
            for login in AGENTS:
                await desk.presence(login, "offline")
            staff_the_tenant(system, AGENT, TEAM)  # the routing the other schedules expect
