"""Inbox pages over the real database: newest activity first across the growing activity windows, an agent's
view being the union of their teams' conversations and their own (queried as one equality query each)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from parley_router.handlers.inbound import InboundHandler

from .conftest import T0, Router, inbound

AGES = [timedelta(minutes=1), timedelta(minutes=20), timedelta(hours=3), timedelta(hours=20), timedelta(days=3),
        timedelta(days=8), timedelta(days=30), timedelta(days=90), timedelta(days=400)]  # across every window
TEAMS = ["sales", "billing", "support"]


async def _pages(router: Router, limit: int, **caller: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await router.ok("GET", "/v1/conversations", params=params, **caller)
        pages.append([item["external_user_id"] for item in page["items"]])
        if (cursor := page["next_cursor"]) is None:
            return pages


async def test_pages_run_newest_first_and_an_agent_sees_their_teams_and_their_own(router: Router, mongo: Any) -> None:
    for team in TEAMS:
        await router.ok("PUT", f"/v1/teams/{team}", json={"strategy": "manual"})
    await router.agent("ann", ["sales", "billing"], online=False)
    await router.agent("sam", ["support"], online=False)
    db = mongo[router.infra.database_name("router")]
    for n, age in enumerate(AGES):
        router.clock.set(T0 - age)  # the transfer happens then too: the activity stays that old
        await InboundHandler(router.engine).handle(inbound(user=f"u{n}", text=f"hi {n}", at=T0 - age))
        conv = await db["conversations"].find_one({"external_user_id": f"u{n}"})
        await router.ok("POST", f"/v1/conversations/{conv['_id']}/transfer",
                        json={"kind": "team", "id": TEAMS[n % 3]})
        if n == 8:  # a support conversation given to ann herself
            await router.ok("POST", f"/v1/conversations/{conv['_id']}/assign", json={"kind": "agent", "id": "ann"})
    router.clock.set(T0)

    everyone = [f"u{n}" for n in range(9)]
    assert await _pages(router, 4) == [everyone[:4], everyone[4:8], everyone[8:]]
    anns = ["u0", "u1", "u3", "u4", "u6", "u7", "u8"]
    assert await _pages(router, 3, login="ann", roles=["agent"]) == [anns[:3], anns[3:6], anns[6:]]
    assert await _pages(router, 3, login="bob", roles=["agent"]) == [[]]
    queued = await router.ok("GET", "/v1/conversations", params={"status": "queued", "limit": 2},
                             login="ann", roles=["agent"])
    assert [item["external_user_id"] for item in queued["items"]] == ["u0", "u1"]


async def test_conversations_active_at_the_same_instant_are_paged_by_id_none_twice_none_missed(
        router: Router) -> None:
    for n in range(7):  # five at one instant, between a newer and an older one
        at = T0 - timedelta(minutes=1 if n == 0 else 30 if n == 6 else 5)
        await InboundHandler(router.engine).handle(inbound(user=f"u{n}", text=f"hi {n}", at=at))

    pages = await _pages(router, 2)

    seen = [user for page in pages for user in page]
    assert sorted(seen) == [f"u{n}" for n in range(7)] and len(pages) == 4
    assert (seen[0], seen[-1]) == ("u0", "u6")
