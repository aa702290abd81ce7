"""A new conversation an agent has room for is stored once, already offered (its insert carries the offer); one
nobody has room for is stored queued and offered by an update when room frees. Its `opened` event always comes
before its `offered` one, and the two leave in one produce request: a reader gets both in one fetch."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.handlers.inbound import InboundHandler

from .conftest import Router, inbound, published_events, record_batches


def _count_writes(router: Router) -> dict[str, int]:
    """Calls of the conversation store's insert and versioned save (our own adapter, over the real database)."""
    conversations = router.engine.stores.conversations
    writes = {"insert": 0, "save": 0}
    insert, save = conversations.insert, conversations.save

    async def counted_insert(conv: Any) -> Any:
        writes["insert"] += 1
        return await insert(conv)

    async def counted_save(conv: Any, previous: Any) -> Any:
        writes["save"] += 1
        return await save(conv, previous)

    conversations.insert, conversations.save = counted_insert, counted_save
    return writes


async def test_customers_arriving_together_are_stored_once_each_offered_while_room_lasts(
        router: Router, mongo: Any) -> None:
    await router.agent("ann", ["default"], capacity=3)
    await router.agent("bob", ["default"], capacity=2)
    writes, events = _count_writes(router), published_events(router)
    users = [f"u{n}" for n in range(8)]

    await asyncio.gather(*(InboundHandler(router.engine).handle(inbound(user=user, message_id=f"m-{user}"))
                           for user in users))

    db = mongo[router.infra.database_name("router")]
    stored = {doc["external_user_id"]: doc async for doc in db["conversations"].find({})}
    offered = sorted(user for user, doc in stored.items() if doc["status"] == "assigned")
    assert len(stored) == 8 and len(offered) == 5  # the five free slots
    assert sorted(doc["assignee"]["id"] for doc in stored.values() if doc["status"] == "assigned") == [
        "ann", "ann", "ann", "bob", "bob"]
    assert {doc["status"] for user, doc in stored.items() if user not in offered} == {"queued"}
    assert writes == {"insert": 8, "save": 0}  # one write per conversation
    for user in users:
        mine = [(change, status) for who, change, status in events if who == user]
        assert mine == ([("opened", "queued"), ("offered", "assigned")] if user in offered
                        else [("opened", "queued")])
    assert {doc["version"] for user, doc in stored.items() if user in offered} == {1}
    timeline = await router.ok("GET", f"/v1/conversations/{stored[offered[0]]['_id']}/timeline")
    assert [(entry["kind"], entry.get("change")) for entry in timeline["items"]] == [
        ("inbound", None), ("activity", "offered")]


async def test_a_queued_conversation_is_offered_by_an_update_when_room_frees(router: Router, mongo: Any) -> None:
    writes, events = _count_writes(router), published_events(router)
    await InboundHandler(router.engine).handle(inbound(user="u1", message_id="m1"))
    assert (writes, events) == ({"insert": 1, "save": 0}, [("u1", "opened", "queued")])

    await router.agent("ann", ["default"], capacity=1)  # comes online: the queue is dispatched

    db = mongo[router.infra.database_name("router")]
    doc = await db["conversations"].find_one({"external_user_id": "u1"})
    assert (doc["status"], doc["assignee"]["id"], doc["version"]) == ("assigned", "ann", 1)
    assert writes == {"insert": 1, "save": 1}
    assert events[-1] == ("u1", "offered", "assigned")


async def test_a_new_conversations_opened_and_offered_events_are_one_batch_on_the_topic(router: Router) -> None:
    """Published one after the other, each awaited, they were two produce requests, and each reader (contacts',
    outbound's and media's projections of who holds a conversation) often fetched them apart: two writes of its
    projection per new conversation instead of one."""
    await router.agent("ann", ["default"], capacity=5)
    users = ["u1", "u2", "u3"]
    for user in users:
        await InboundHandler(router.engine).handle(inbound(user=user, message_id=f"m-{user}"))

    batches = await record_batches(router.infra, CONVERSATIONS_EVENTS)

    for user in users:
        [mine] = [batch for batch in batches if any(event["external_user_id"] == user for event in batch)]
        assert [(event["change"], event["status"]) for event in mine] == [("opened", "queued"), ("offered", "assigned")]


async def test_an_offer_failing_beside_another_leaves_no_conversation_without_its_key(
        router: Router, mongo: Any) -> None:
    """Two customers arrive together and are offered in one plan; bob's offer fails (the cache went away) while
    ann's is storing its conversation. The batch fails and comes again — and each customer still has one
    conversation: the failed plan's other offers are waited for before the openings decide whether their
    conversation was stored (one that gave its key back while its insert was still on its way stayed stored and
    offered, with no key, and the retry opened that customer a second one)."""
    await router.agent("ann", ["default"], capacity=1)
    await router.agent("bob", ["default"], capacity=1)
    engine = router.engine
    presence, conversations = engine.stores.presence, engine.stores.conversations
    take, insert, offer_soon = presence.take, conversations.insert, engine.offer_soon
    both_queued = asyncio.Barrier(2)

    async def offered_together(conv: Any) -> None:  # as a consumer batch's openings reach the dispatcher
        await both_queued.wait()
        await offer_soon(conv)

    async def take_failing_for_bob(tenant_id: str, login: str, *args: Any, **kwargs: Any) -> Any:
        if login == "bob":
            await asyncio.sleep(0.1)  # while ann's conversation is being stored
            raise RedisConnectionError("the cache went away")
        return await take(tenant_id, login, *args, **kwargs)

    async def slow_insert(conv: Any) -> Any:
        await asyncio.sleep(0.3)
        return await insert(conv)

    engine.offer_soon, presence.take, conversations.insert = offered_together, take_failing_for_bob, slow_insert
    handler = InboundHandler(engine)
    messages = [inbound(user=user, message_id=f"m-{user}") for user in ("u1", "u2")]
    outcomes = await asyncio.gather(*(handler.handle(message) for message in messages), return_exceptions=True)
    assert all(isinstance(outcome, RedisConnectionError) for outcome in outcomes), outcomes  # one plan, failed

    engine.offer_soon, presence.take, conversations.insert = offer_soon, take, insert  # the batch comes again
    await asyncio.sleep(0.5)  # anything still on its way lands first
    for message in messages:
        await handler.handle(message)
    db = mongo[router.infra.database_name("router")]
    per_customer = Counter([doc["external_user_id"] async for doc in db["conversations"].find({})])
    assert per_customer == {"u1": 1, "u2": 1}
