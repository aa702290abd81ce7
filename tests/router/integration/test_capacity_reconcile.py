"""The capacity reconciler over real Redis and MongoDB: leaked slots removed, missing ones restored, in-flight
slots kept, and several engines racing on the same conversations end with Redis agreeing with MongoDB."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from parley_router.adapters.conversations import CHANGED_AT, StaleVersion
from parley_router.adapters.presence import Take
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, TransitionError
from parley_router.handlers.engine import Engine
from parley_router.handlers.upkeep import Healed, Upkeep

from .conftest import T0, Router
from .test_assignment_flow import new_conv


def upkeep_of(router: Router, grace_seconds: float = 10.0, full_audit_seconds: float = 600.0) -> Upkeep:
    upkeep: Upkeep = router.app.state.upkeep
    return Upkeep(upkeep.engine, upkeep.audit, grace_seconds, full_audit_seconds)


def count_full_reads(upkeep: Upkeep, monkeypatch: Any) -> list[str]:
    """The tenants whose every held conversation the upkeep reads from here on."""
    full_reads: list[str] = []
    read_all = upkeep.audit.holders

    async def holders(tenant_id: str) -> Any:
        full_reads.append(tenant_id)
        return await read_all(tenant_id)

    monkeypatch.setattr(upkeep.audit, "holders", holders)
    return full_reads


async def slots(router: Router, redis: Any, login: str) -> set[str]:
    key = f"{router.infra.redis_prefix()}router:active:acme:{login}:whatsapp"
    return {str(member) for member in await redis.smembers(key)}


async def backdate(router: Router, redis: Any, login: str, conversation_id: str) -> None:
    """Make a slot look taken long ago (as a leak older than the grace period is)."""
    key = f"{router.infra.redis_prefix()}router:active:acme:{login}:whatsapp:taken_at"
    await redis.zadd(key, {conversation_id: 0})


async def lose_slot(router: Router, redis: Any, login: str, conversation_id: str) -> None:
    """The slot gone without a release (an undercount): what the reconciler puts back."""
    await redis.srem(f"{router.infra.redis_prefix()}router:active:acme:{login}:whatsapp", conversation_id)


async def stored(router: Router, cid: str) -> Conversation:
    conv = await router.engine.stores.conversations.get("acme", cid)
    assert conv is not None
    return conv


async def test_reconciler_removes_leaks_restores_undercount_and_keeps_in_flight(router: Router, redis: Any) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    await router.agent("ann", ["default"], capacity=3)
    await router.agent("bob", ["default"], capacity=3)
    held, queued, other, closed, in_flight = [(await new_conv(router, f"u{i}"))["id"] for i in range(5)]
    presence = router.engine.stores.presence
    await router.ok("POST", f"/v1/conversations/{held}/take", login="ann", roles=["agent"])
    await router.ok("POST", f"/v1/conversations/{other}/take", login="bob", roles=["agent"])
    await router.ok("POST", f"/v1/conversations/{closed}/take", login="ann", roles=["agent"])
    await router.ok("POST", f"/v1/conversations/{closed}/close", json={"note": "done"})
    # leaks: a queued one, another agent's, a closed one; an undercount: ann's held one lost its slot
    version = await router.engine.stores.directory.version("acme")
    for cid in (queued, other, closed):
        assert (await presence.take("acme", "ann", "whatsapp", cid, 10, version))[0] is Take.TAKEN
        await backdate(router, redis, "ann", cid)
    await lose_slot(router, redis, "ann", held)
    await lose_slot(router, redis, "bob", other)
    # in flight: taken just now, its save not done yet; and a slot added by a path that does not stamp
    assert (await presence.take("acme", "ann", "whatsapp", in_flight, 10, version))[0] is Take.TAKEN
    await redis.sadd(f"{router.infra.redis_prefix()}router:active:acme:ann:whatsapp", "ghost")

    healed = await upkeep_of(router).reconcile_tenant("acme")

    assert (healed.removed, healed.restored) == (3, 2)
    assert await slots(router, redis, "ann") == {held, in_flight, "ghost"}  # unstamped: stamped, kept for now
    assert await slots(router, redis, "bob") == {other}
    # the in-flight save lands; once the grace is over, only the unstamped leak goes
    conv = await stored(router, in_flight)
    await router.engine.stores.conversations.save(
        conv_rules.assign(conv, Assignee(AssigneeKind.AGENT, "ann"), T0), conv)
    await asyncio.sleep(0.01)
    again = await upkeep_of(router, grace_seconds=0).reconcile_tenant("acme")
    assert (again.removed, again.restored) == (1, 0)
    assert await slots(router, redis, "ann") == {held, in_flight}


async def test_restoring_above_capacity_counts_the_truth_and_hands_out_nothing_more(
        router: Router, redis: Any) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    await router.agent("ann", ["default"], capacity=1)
    first = (await new_conv(router, "u1"))["id"]
    assert (await stored(router, first)).agent == "ann"
    # the undercount let a second conversation through: ann holds two with capacity one
    await lose_slot(router, redis, "ann", first)
    second = (await new_conv(router, "u2"))["id"]
    assert (await stored(router, second)).agent == "ann"
    third = (await new_conv(router, "u3"))["id"]

    healed = await upkeep_of(router).reconcile_tenant("acme")

    assert healed.restored == 1
    assert await slots(router, redis, "ann") == {first, second}
    await router.engine.dispatch("acme")
    assert (await stored(router, third)).status.value == "queued"  # no more work while over capacity
    await router.ok("POST", f"/v1/conversations/{first}/close", json={})
    await router.ok("POST", f"/v1/conversations/{second}/close", json={})
    assert (await stored(router, third)).agent == "ann"  # back under capacity: the queue is served


async def test_the_reconciler_visits_the_tenants_of_the_directory_and_of_the_conversations(router: Router) -> None:
    audit = router.engine.stores.audit
    assert "acme" not in await audit.tenants()
    await new_conv(router, "u1")  # a tenant with conversations and no agent yet: its counters name it
    assert "acme" in await audit.tenants()


async def test_rounds_between_full_reads_repair_from_what_changed(router: Router, redis: Any,
                                                                    monkeypatch: Any) -> None:
    """After a full read, a round reads only the conversations stored since: a drift of the slot sets (a leaked
    slot, a lost one) and a conversation taken since are repaired without reading every held conversation."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    await router.agent("ann", ["default"], capacity=5)
    held, queued, taken_later = [(await new_conv(router, f"u{i}"))["id"] for i in range(3)]
    await router.ok("POST", f"/v1/conversations/{held}/take", login="ann", roles=["agent"])
    upkeep = upkeep_of(router)
    full_reads = count_full_reads(upkeep, monkeypatch)
    assert await upkeep.reconcile_tenant("acme") == Healed()
    presence, version = router.engine.stores.presence, await router.engine.stores.directory.version("acme")
    assert (await presence.take("acme", "ann", "whatsapp", queued, 10, version))[0] is Take.TAKEN
    await backdate(router, redis, "ann", queued)  # a leak of a conversation not stored since the full read
    await lose_slot(router, redis, "ann", held)  # a lost slot of one not stored since either
    await router.ok("POST", f"/v1/conversations/{taken_later}/take", login="ann", roles=["agent"])
    await lose_slot(router, redis, "ann", taken_later)

    healed = await upkeep.reconcile_tenant("acme")

    assert (healed.removed, healed.restored) == (1, 2)
    assert await slots(router, redis, "ann") == {held, taken_later}
    assert full_reads == ["acme"]  # the first round's only


async def test_a_change_the_rounds_between_full_reads_cannot_see_waits_for_the_next_full_read(
        router: Router, redis: Any, mongo: Any, monkeypatch: Any) -> None:
    """Conversations stored with a time before the last round's read (a replica whose clock is far behind) are
    not among what changed: one closed with its slot leaked keeps the slot until the next full read removes it, and
    one closed and released is not put back on the strength of the view that still has it held (the round reads a
    conversation again before putting it back) — a view behind the truth delays a repair, never makes a wrong one."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    await router.agent("ann", ["default"], capacity=5)
    leaked, released = [(await new_conv(router, f"u{i}"))["id"] for i in range(2)]
    for conversation_id in (leaked, released):
        await router.ok("POST", f"/v1/conversations/{conversation_id}/take", login="ann", roles=["agent"])
    upkeep = upkeep_of(router, grace_seconds=0, full_audit_seconds=0.5)
    full_reads = count_full_reads(upkeep, monkeypatch)
    await upkeep.reconcile_tenant("acme")
    conversations = mongo[router.infra.database_name("router")]["conversations"]
    for conversation_id in (leaked, released):
        await router.ok("POST", f"/v1/conversations/{conversation_id}/close", json={})
        await conversations.update_one({"_id": conversation_id},
                                       {"$set": {CHANGED_AT: datetime.now(UTC) - timedelta(hours=1)}})
    await presence_take_again(router, leaked)  # its set still counts the closed conversation

    assert await upkeep.reconcile_tenant("acme") == Healed()
    assert await slots(router, redis, "ann") == {leaked}

    await asyncio.sleep(0.5)
    assert await upkeep.reconcile_tenant("acme") == Healed(removed=1)
    assert await slots(router, redis, "ann") == set()
    assert full_reads == ["acme", "acme"]


async def presence_take_again(router: Router, conversation_id: str) -> None:
    version = await router.engine.stores.directory.version("acme")
    taken = await router.engine.stores.presence.take("acme", "ann", "whatsapp", conversation_id, 10, version)
    assert taken[0] is Take.TAKEN


@pytest.mark.parametrize("round_kind", ["full", "between full reads"])
async def test_a_conversation_moved_away_while_the_reconciler_reads_is_not_put_back(
        router: Router, redis: Any, monkeypatch: Any, round_kind: str) -> None:
    """Taken after the slot sets were read and released after MongoDB was read, a conversation looks held but
    missing; its slot already serves another conversation, so putting it back would count ann over capacity. In a
    round between full reads, the read that decides is the one of the conversations the plan would put back."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    await router.agent("ann", ["default"], capacity=2)
    first, second, third = [(await new_conv(router, f"u{i}"))["id"] for i in range(3)]
    await router.ok("POST", f"/v1/conversations/{second}/take", login="ann", roles=["agent"])
    upkeep = upkeep_of(router)
    if round_kind != "full":
        await upkeep.reconcile_tenant("acme")  # the full read: the rounds after it read only what changed
    read_slots = upkeep.audit.slots
    deciding_read = "holders" if round_kind == "full" else "holders_of"
    read_held = getattr(upkeep.audit, deciding_read)

    async def slots_then_a_take(*args: Any) -> Any:
        found = await read_slots(*args)
        await router.ok("POST", f"/v1/conversations/{first}/take", login="ann", roles=["agent"])
        return found

    async def held_then_a_close_and_a_take(*args: Any) -> Any:
        found = await read_held(*args)
        await router.ok("POST", f"/v1/conversations/{first}/close", json={})
        await router.ok("POST", f"/v1/conversations/{third}/take", login="ann", roles=["agent"])
        return found

    monkeypatch.setattr(upkeep.audit, "slots", slots_then_a_take)
    monkeypatch.setattr(upkeep.audit, deciding_read, held_then_a_close_and_a_take)

    healed = await upkeep.reconcile_tenant("acme")

    assert healed.restored == 0
    assert await slots(router, redis, "ann") == {second, third}


async def test_a_conversation_closed_while_the_slots_are_rebuilt_is_not_put_back(
        router: Router, redis: Any, monkeypatch: Any) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    await router.agent("ann", ["default"], capacity=2)
    first, second = [(await new_conv(router, f"u{i}"))["id"] for i in range(2)]
    assert {(await stored(router, cid)).agent for cid in (first, second)} == {"ann"}
    async for key in redis.scan_iter(match=f"{router.infra.redis_prefix()}router:*"):
        await redis.delete(key)
    audit = router.engine.stores.audit
    read_held = audit.held

    async def held_then_a_close(tenant_id: str) -> Any:
        found = await read_held(tenant_id)
        await router.ok("POST", f"/v1/conversations/{first}/close", json={})
        return found

    monkeypatch.setattr(audit, "held", held_then_a_close)

    await router.engine.rebuild_slots("acme")

    assert await slots(router, redis, "ann") == {second}


async def test_a_capacity_lowered_through_another_replica_binds_this_one_at_once(router: Router) -> None:
    """Replica B read ann's capacity of 3 just before a manager lowered it to 1 through replica A: B's directory
    cache is still fresh, yet its take is refused, B reads the directory again and counts against 1."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    await router.agent("ann", ["default"], capacity=3)
    first, second = [(await new_conv(router, f"u{i}"))["id"] for i in range(2)]
    replica_b = Engine(router.engine.stores, router.engine.publisher, router.clock)  # a directory cache of its own
    assert (await replica_b.cache.agents("acme"))["ann"].default_capacity == 3
    await router.ok("POST", f"/v1/conversations/{first}/take", login="ann", roles=["agent"])
    await router.agent("ann", ["default"], capacity=1)  # through replica A

    conv = await stored(router, second)
    with pytest.raises(TransitionError, match="capacity"):
        await replica_b.change(conv, partial(conv_rules.assign, target=Assignee(AssigneeKind.AGENT, "ann"), now=T0),
                               "assigned", "x", dispatch_after=False)

    assert (await replica_b.cache.agents("acme"))["ann"].default_capacity == 1
    await router.agent("ann", ["default"], capacity=2)  # raised: B takes with the new capacity too
    await replica_b.change(conv, partial(conv_rules.assign, target=Assignee(AssigneeKind.AGENT, "ann"), now=T0),
                           "assigned", "x", dispatch_after=False)
    assert (await stored(router, second)).agent == "ann"


async def _race(engine: Engine, cid: str, target: str | None, rng: random.Random) -> None:
    """Read fresh and move, a few times with jitter, so replicas interleave at every step of `change`."""
    for _ in range(3):
        conv = await engine.stores.conversations.get("acme", cid)
        assert conv is not None
        try:
            if target is None:
                await engine.change(conv, partial(conv_rules.return_to_queue, now=T0), "status_changed", "x",
                                    dispatch_after=False)
            else:
                await engine.change(conv, partial(conv_rules.assign, target=Assignee(AssigneeKind.AGENT, target),
                                                  now=T0), "assigned", "x", dispatch_after=False)
        except (StaleVersion, TransitionError):
            pass
        await asyncio.sleep(rng.random() * 0.003)


@pytest.mark.parametrize("last_round", ["full", "between full reads"])
async def test_engines_racing_on_the_same_conversations_end_consistent(router: Router, redis: Any,
                                                                       last_round: str) -> None:
    """Four engines (replicas) apply different moves to the same read of each conversation, round after round,
    while reconcilers run (a full round, then rounds reading what changed); afterwards one reconcile makes every
    slot set equal the stored truth."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual"})
    capacity = 6
    for login in ("ann", "bob"):
        await router.agent(login, ["default"], capacity=capacity)
    ids = [(await new_conv(router, f"u{i}"))["id"] for i in range(4)]
    replicas = [Engine(router.engine.stores, router.engine.publisher, router.clock) for _ in range(4)]
    upkeep = upkeep_of(router)  # grace 10 s: during the race every slot is fresh, so nothing is removed
    moves = ["ann", "bob", "ann", None]
    rng = random.Random(7)
    for round_no in range(3):
        races = [_race(replicas[i], cid, moves[(i + round_no) % 4], rng) for cid in ids for i in range(4)]
        await asyncio.gather(*races, upkeep.reconcile_tenant("acme"))
        for login in ("ann", "bob"):
            assert len(await slots(router, redis, login)) <= capacity

    await asyncio.sleep(0.05)
    if last_round == "full":
        await upkeep_of(router, grace_seconds=0).reconcile_tenant("acme")
    else:
        upkeep.grace_ms = 0
        await upkeep.reconcile_tenant("acme")

    truth: dict[str, set[str]] = {"ann": set(), "bob": set()}
    for cid in ids:
        conv = await stored(router, cid)
        if conv.agent and conv.status.value in ("assigned", "snoozed"):
            truth[conv.agent].add(cid)
    for login in ("ann", "bob"):
        assert await slots(router, redis, login) == truth[login]
        assert len(truth[login]) <= capacity


async def test_after_the_cache_lost_the_slots_nobody_is_offered_over_capacity(router: Router, redis: Any) -> None:
    """Redis restarted empty (here: the router's keys deleted): the next take waits until the tenant's slots are
    put back from MongoDB, so an agent at capacity gets nothing more, and one with room gets exactly that."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    await router.agent("ann", ["default"], capacity=2)
    first = [await new_conv(router, f"u{i}") for i in range(2)]
    assert all((conv["assignee"] or {}).get("id") == "ann" for conv in first), first
    async for key in redis.scan_iter(match=f"{router.infra.redis_prefix()}router:*"):
        await redis.delete(key)
    await router.ok("POST", "/v1/agents/me/heartbeat", login="ann", roles=["agent"], json={"presence": "online"})

    third = await new_conv(router, "u3")

    assert third["status"] == "queued", third
    assert await slots(router, redis, "ann") == {conv["id"] for conv in first}  # put back from MongoDB
    await router.ok("PUT", "/v1/agents/ann", json={"teams": ["default"], "default_capacity": 3})  # room for one
    assert (await router.ok("GET", f"/v1/conversations/{third['id']}"))["assignee"]["id"] == "ann"
    assert len(await slots(router, redis, "ann")) == 3
