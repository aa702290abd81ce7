"""Agents going offline (real Redis, MongoDB, Kafka): offers return to the queue at once and go to the next
agent; accepted conversations stay, unless the team's `requeue_on_offline` returns them too. Detected on an
explicit `offline` heartbeat and on heartbeat (TTL) expiry."""

from __future__ import annotations

from typing import Any

from parley_common.settings import InfraSettings
from parley_router.domain.offline import OFFLINE_COMMENT
from parley_router.handlers.upkeep import Upkeep

from .conftest import Router, eventually, running_router
from .test_assignment_flow import new_conv
from .test_consumers import read_changes


async def conv(router: Router, cid: str) -> dict[str, Any]:
    return await router.ok("GET", f"/v1/conversations/{cid}")


async def offered_and_accepted(router: Router, requeue_on_offline: bool) -> tuple[str, str]:
    """ann accepted one conversation (took it from the queue) and has a second one offered, not accepted;
    bob is in the team but not online yet."""
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "manual", "requeue_on_offline": requeue_on_offline})
    await router.agent("ann", ["default"], capacity=3)
    await router.agent("bob", ["default"], capacity=3, online=False)
    accepted = (await new_conv(router, "u1"))["id"]
    await router.ok("POST", f"/v1/conversations/{accepted}/take", login="ann", roles=["agent"])
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin",
                                                      "requeue_on_offline": requeue_on_offline})
    offered = await new_conv(router, "u2")
    assert (offered["status"], offered["assignee"]["id"], bool(offered["offer_expires_at"])) == (
        "assigned", "ann", True)
    await router.ok("POST", "/v1/agents/me/heartbeat", login="bob", roles=["agent"], json={"presence": "online"})
    return accepted, offered["id"]


async def test_explicit_offline_returns_offers_at_once_and_keeps_accepted(router: Router) -> None:
    accepted, offered = await offered_and_accepted(router, requeue_on_offline=False)

    await router.ok("POST", "/v1/agents/me/heartbeat", login="ann", roles=["agent"], json={"presence": "offline"})

    moved = await conv(router, offered)
    assert (moved["status"], moved["assignee"]["id"]) == ("assigned", "bob")  # back in the queue, dispatched
    kept = await conv(router, accepted)
    assert (kept["status"], kept["assignee"]["id"]) == ("assigned", "ann")
    events = await read_changes(router, {"offer_expired"})
    expired = [e for e in events if e.change == "offer_expired"]
    assert [(e.conversation_id, e.comment, e.status, e.previous_assignee.id) for e in expired] == [
        (offered, OFFLINE_COMMENT, "queued", "ann")]
    assert not [e for e in events if e.conversation_id == accepted and e.change == "transferred"]


async def test_heartbeat_expiry_with_requeue_on_offline_returns_everything(
        kafka_topics: InfraSettings, mongo: Any, redis: Any) -> None:
    """The background offline check (every 0.2 s here) finds ann's expired heartbeat by itself."""
    async with running_router(kafka_topics, consume=False, offline_check_interval_seconds=0.2) as router:
        await _expiry_returns_everything(router, redis)


async def _expiry_returns_everything(router: Router, redis: Any) -> None:
    accepted, offered = await offered_and_accepted(router, requeue_on_offline=True)
    await redis.pexpire(f"{router.infra.redis_prefix()}router:presence:acme:ann", 20)  # a very short TTL

    async def both_with_bob() -> bool:
        convs = [await conv(router, cid) for cid in (accepted, offered)]
        return all((c["status"], c["assignee"]["id"]) == ("assigned", "bob") for c in convs)

    await eventually(both_with_bob, within=20)
    timeline = (await router.ok("GET", f"/v1/conversations/{accepted}/timeline"))["items"]
    assert [(e["change"], e["comment"]) for e in timeline if e.get("comment") == OFFLINE_COMMENT] == [
        ("transferred", OFFLINE_COMMENT)]
    upkeep: Upkeep = router.app.state.upkeep
    assert await upkeep.check_offline() == 0  # handled once: ann left the set of agents believed online
    assert await router.engine.stores.presence.expired_logins("acme") == []
    events = await read_changes(router, {"transferred", "offer_expired"})
    transferred = [e for e in events if e.change == "transferred" and e.conversation_id == accepted]
    assert [(e.status, e.assignee.id, e.previous_assignee.id, e.comment) for e in transferred] == [
        ("queued", "default", "ann", OFFLINE_COMMENT)]

