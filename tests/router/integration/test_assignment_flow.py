"""Routing and assignment over the real database and cache: rules, strategies, sticky agents, presence,
capacity freed, offer timeout, snooze, and the atomic capacity check-and-take under concurrency."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from counted_redis import CountedRedis

from parley_router.adapters.presence import PresenceStore, Take
from parley_router.domain.assignment import Presence
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbound import InboundHandler

from .conftest import T0, Router, inbound


async def new_conv(router: Router, user: str, text: str = "hello", at: Any = T0) -> dict[str, Any]:
    await InboundHandler(router.engine).handle(inbound(user=user, text=text, message_id=f"m-{user}-{text}", at=at))
    conv = await router.engine.stores.conversations.open_for(_key(user))
    assert conv is not None
    return await router.ok("GET", f"/v1/conversations/{conv.id}")


def _key(user: str) -> Any:
    from parley_common.ids import ConversationKey
    return ConversationKey("acme", "wa-1", user)


def rule(rule_id: str, kind: str, target: str, **conditions: Any) -> dict[str, Any]:
    return {"id": rule_id, "target_kind": kind, "target_id": target, **conditions}


async def test_rules_route_to_bot_team_skill_and_agent(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/sales", json={"strategy": "manual"})
    await router.agent("es-agent", [], skills=["es"])
    await router.ok("PUT", "/v1/routing", json={"rules": [
        rule("faq", "bot", "faq-bot", keywords_any=["opening hours"]),
        rule("night", "team", "night", within_business_hours=False),
        rule("spanish", "skill", "es", keywords_any=["hola"]),
        rule("boss", "agent", "carl", keywords_any=["ceo"]),
        rule("rest", "team", "sales"),
    ]})
    assert (await new_conv(router, "u1", "what are your opening hours?"))["status"] == "bot"
    spanish = await new_conv(router, "u2", "hola")
    assert (spanish["status"], spanish["assignee"]["id"]) == ("assigned", "es-agent")
    carl = await new_conv(router, "u3", "ceo please")
    assert (carl["status"], carl["assignee"]) == ("queued", {"kind": "agent", "id": "carl"})
    assert (await new_conv(router, "u4", "hi"))["team_id"] == "sales"
    sunday = await new_conv(router, "u5", "hi", at=T0 - timedelta(days=1))
    assert sunday["team_id"] == "night"
    await router.agent("carl", [])  # the agent a rule names gets it when he comes online
    assert (await router.ok("GET", f"/v1/conversations/{carl['id']}"))["status"] == "assigned"


async def test_round_robin_least_busy_and_sticky(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    for login in ("ann", "bob", "cid"):
        await router.agent(login, ["default"], capacity=5)
    got = [(await new_conv(router, f"u{i}"))["assignee"]["id"] for i in range(4)]
    assert got == ["ann", "bob", "cid", "ann"]

    await router.ok("PUT", "/v1/teams/default", json={"strategy": "least_busy"})
    assert (await new_conv(router, "u4"))["assignee"]["id"] in ("bob", "cid")  # ann has 2, others 1
    await router.ok("PUT", "/v1/routing", json={"rules": [rule("sticky", "team", "default", sticky=True)]})
    first = await new_conv(router, "loyal")
    server = first["assignee"]["id"]
    await router.ok("POST", f"/v1/conversations/{first['id']}/close", json={})
    again = await new_conv(router, "loyal", "back again")
    assert again["assignee"]["id"] == server and again["id"] != first["id"]


async def test_only_online_agents_and_assignment_when_capacity_frees(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    await router.agent("away", ["default"], online=False)
    await router.ok("POST", "/v1/agents/me/heartbeat", login="away", roles=["agent"], json={"presence": "away"})
    await router.agent("ann", ["default"], capacity=1)
    first, second = await new_conv(router, "u1"), await new_conv(router, "u2")
    assert first["assignee"]["id"] == "ann" and second["status"] == "queued"
    await router.ok("POST", f"/v1/conversations/{first['id']}/close", json={})
    assert (await router.ok("GET", f"/v1/conversations/{second['id']}"))["assignee"]["id"] == "ann"
    agents = {a["login"]: a for a in (await router.ok("GET", "/v1/agents"))["items"]}
    assert (agents["away"]["presence"], agents["ann"]["active"]) == ("away", {"whatsapp": 1})
    assert (agents["ann"]["default_capacity"], agents["ann"]["capacity"]) == (1, {})  # her load: 1 of 1


async def test_an_agent_coming_online_is_offered_a_queue_longer_than_a_page(router: Router) -> None:
    """The queue is read a page (200) at a time, and read on while a whole page was offered; a page's offers run
    at once, more of them than the router has Redis connections (100): they wait for one instead of failing the
    heartbeat that dispatched them with 503 cache_unavailable."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    await router.agent("ann", ["default"], capacity=1000, online=False)
    handler = InboundHandler(router.engine)
    for start in range(0, 250, 50):
        await asyncio.gather(*(handler.handle(inbound(user=f"u{n}", message_id=f"m-{n}"))
                               for n in range(start, start + 50)))
    answer = await router.ok("POST", "/v1/agents/me/heartbeat", login="ann", roles=["agent"],
                             json={"presence": "online"})
    assert answer["offered"] == 250
    assert await router.engine.stores.conversations.queued("acme", 10) == []


async def test_queue_serves_highest_priority_then_longest_waiting(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    old = await new_conv(router, "old", at=T0)
    new = await new_conv(router, "new", at=T0 + timedelta(minutes=5))
    urgent = await new_conv(router, "urgent", at=T0 + timedelta(minutes=9))
    await router.ok("POST", f"/v1/conversations/{urgent['id']}/priority", json={"priority": 3})
    await router.agent("ann", ["default"], capacity=2)
    status = {c["id"]: (await router.ok("GET", f"/v1/conversations/{c['id']}"))["status"] for c in (old, new, urgent)}
    assert status == {urgent["id"]: "assigned", old["id"]: "assigned", new["id"]: "queued"}


async def test_unanswered_offer_returns_to_queue_and_goes_to_the_next_agent(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin", "offer_timeout_seconds": 60})
    await router.agent("ann", ["default"])
    conv = await new_conv(router, "u1")
    assert conv["assignee"]["id"] == "ann"
    await router.agent("bob", ["default"])
    router.clock.advance(timedelta(seconds=61))
    assert await router.engine.sweep() == 1
    after = await router.ok("GET", f"/v1/conversations/{conv['id']}")
    assert (after["status"], after["assignee"]["id"]) == ("assigned", "bob")
    changes = [e.get("change") for e in (await router.ok("GET", f"/v1/conversations/{conv['id']}/timeline"))[
        "items"]]
    assert changes.count("offered") == 2 and "offer_expired" in changes


async def test_the_sweep_moves_what_is_due_and_nothing_without_a_due_time(router: Router) -> None:
    """An accepted conversation has no offer expiry: never swept, beside an expired offer that is. The sweep's
    queries bound the due time from below (what the bound saves, the database's walk over every conversation
    with no due time, is timed in docs/benchmarks.md, not here)."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin", "offer_timeout_seconds": 60})
    await router.agent("ann", ["default"], capacity=3)
    held, offered = await new_conv(router, "held"), await new_conv(router, "offered")
    await router.ok("POST", f"/v1/conversations/{held['id']}/accept", login="ann", roles=["agent"], json={})
    assert (await router.ok("GET", f"/v1/conversations/{held['id']}"))["offer_expires_at"] is None
    router.clock.advance(timedelta(seconds=61))
    assert await router.engine.sweep() == 1
    changes = {conv["id"]: [entry.get("change") for entry in (await router.ok(
        "GET", f"/v1/conversations/{conv['id']}/timeline"))["items"]] for conv in (held, offered)}
    assert "offer_expired" in changes[offered["id"]] and "offer_expired" not in changes[held["id"]]
    assert (await router.ok("GET", f"/v1/conversations/{held['id']}"))["assignee"]["id"] == "ann"


async def test_snooze_wakes_up_on_time(router: Router) -> None:
    conv = await new_conv(router, "u1")
    until = (T0 + timedelta(hours=1)).isoformat()
    await router.ok("POST", f"/v1/conversations/{conv['id']}/snooze", json={"until": until})
    router.clock.advance(timedelta(hours=1))
    await router.engine.sweep()
    assert (await router.ok("GET", f"/v1/conversations/{conv['id']}"))["status"] == "queued"


async def test_presence_expires_without_heartbeat(router: Router, redis: Any) -> None:
    store = PresenceStore(redis, router.infra.redis_prefix(), ttl_seconds=1)
    assert await store.heartbeat("acme", "ann", Presence.ONLINE) is Presence.OFFLINE
    assert await store.heartbeat("acme", "ann", Presence.ONLINE) is Presence.ONLINE
    await asyncio.sleep(1.2)
    assert (await store.snapshot("acme", ["ann"], []))[0]["ann"] is Presence.OFFLINE


async def test_a_slot_goes_back_only_from_the_take_that_stamped_it_last(router: Router) -> None:
    """Replica A takes ann's slot for a conversation and loses the save; replica B, which won, had taken the same
    slot for the same agent (a re-take). A's give-back must leave the slot to B; B's own give-back works."""
    store = router.engine.stores.presence
    await router.engine.rebuild_slots("acme")  # the tenant's slots known complete: takes may go on
    outcome_a, stamp_a = await store.take("acme", "ann", "whatsapp", "c1", 3, 0)
    outcome_b, stamp_b = await store.take("acme", "ann", "whatsapp", "c1", 3, 0)
    assert (outcome_a, outcome_b) == (Take.TAKEN, Take.ALREADY_HELD)
    assert stamp_b > stamp_a  # even within one millisecond
    assert not await store.release_if("acme", "ann", "whatsapp", "c1", stamp_a)
    assert (await store.snapshot("acme", ["ann"], ["whatsapp"]))[1]["ann"] == (("whatsapp", 1),)
    assert await store.stamp_of("acme", "ann", "whatsapp", "c1") == stamp_b
    assert await store.release_if("acme", "ann", "whatsapp", "c1", stamp_b)
    assert (await store.snapshot("acme", ["ann"], ["whatsapp"]))[1]["ann"] == (("whatsapp", 0),)
    assert await store.stamp_of("acme", "ann", "whatsapp", "c1") is None


async def test_capacity_take_is_atomic_under_concurrency(router: Router, redis: Any) -> None:
    """200 concurrent takes on one agent with capacity 3, over separate connections: exactly 3 win."""
    from parley_common.redis import redis_client

    clients = [redis_client(router.infra.redis_url) for _ in range(8)]
    stores = [PresenceStore(client, router.infra.redis_prefix(), 60) for client in clients]
    await router.engine.rebuild_slots("acme")
    try:
        results = [outcome for outcome, _ in await asyncio.gather(
            *(stores[i % 8].take("acme", "ann", "whatsapp", f"c{i}", 3, 0) for i in range(200)))]
        assert sum(results) == 3
        winner = next(f"c{i}" for i, won in enumerate(results) if won)
        replay, _ = await stores[1].take("acme", "ann", "whatsapp", winner, 3, 0)
        assert replay is Take.ALREADY_HELD  # replay: same slot
        assert (await stores[0].snapshot("acme", ["ann"], ["whatsapp"]))[1]["ann"] == (("whatsapp", 3),)
        await stores[2].release("acme", "ann", "whatsapp", winner)
        again = await asyncio.gather(*(store.take("acme", "ann", "whatsapp", f"n{i}", 3, 0)
                                       for i, store in enumerate(stores)))
        assert sum(outcome for outcome, _ in again) == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_the_takes_of_one_turn_are_one_round_trip_and_still_keep_to_capacity(
        router: Router, counted_cache: CountedRedis) -> None:
    """The offers of one dispatch take their slots together (parley_common.shared_scripts): one pipeline, in which
    each take is the same atomic script, so two of them for one agent's last slot still give it once."""
    store = PresenceStore(counted_cache.client, router.infra.redis_prefix(), 60)
    await router.engine.rebuild_slots("acme")
    assert (await store.take("acme", "ann", "whatsapp", "warm", 3, 0))[0] is Take.TAKEN  # connects, loads
    counted_cache.sent.clear()
    outcomes = [outcome for outcome, _ in await asyncio.gather(
        store.take("acme", "ann", "whatsapp", "c1", 3, 0), store.take("acme", "ann", "whatsapp", "c2", 3, 0),
        store.take("acme", "ann", "whatsapp", "c3", 3, 0), store.take("acme", "bob", "whatsapp", "c4", 3, 0))]
    assert counted_cache.sent == ["EVALSHA"]
    assert outcomes == [Take.TAKEN, Take.TAKEN, Take.FULL, Take.TAKEN]


async def test_concurrent_dispatchers_never_overrun_capacity(router: Router) -> None:
    """Several engines (as several replicas would) drain the same queue at once."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "least_busy"})
    await router.agent("ann", ["default"], capacity=2, online=False)
    await router.agent("bob", ["default"], capacity=2, online=False)
    ids = [(await new_conv(router, f"u{i}"))["id"] for i in range(8)]
    for login in ("ann", "bob"):
        await router.engine.stores.presence.heartbeat("acme", login, Presence.ONLINE)
    replicas = [Engine(router.engine.stores, router.engine.publisher, router.clock) for _ in range(4)]
    await asyncio.gather(*(replica.dispatch("acme") for replica in replicas))
    # a dispatcher that lost a race for a conversation leaves it queued for the next dispatch (the sweep's)
    await router.engine.dispatch("acme")
    convs = [await router.ok("GET", f"/v1/conversations/{cid}") for cid in ids]
    per_agent: dict[str, int] = {}
    for conv in convs:
        if conv["status"] == "assigned":
            per_agent[conv["assignee"]["id"]] = per_agent.get(conv["assignee"]["id"], 0) + 1
    assert per_agent == {"ann": 2, "bob": 2}
    assert sum(1 for conv in convs if conv["status"] == "queued") == 4
