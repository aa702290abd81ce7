"""One message handled by two consumers at the same moment (a consumer group rebalancing hands a record still in
progress to another consumer, or another replica): whatever the interleaving, one conversation, one inbound
entry, and the key's pointer names that conversation. A delivery that finds the other one mid-way is retried,
as a redelivery would be."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from parley_common.batching import TickBatcher
from parley_common.settings import InfraSettings
from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.adapters.conversations import OpeningInProgress
from parley_router.domain.assignment import Presence
from parley_router.handlers.inbound import InboundHandler

from .conftest import ProcessGone, Router, inbound, published_events, record_batches, running_router

ROUNDS = 8


async def _handle_until_done(handler: InboundHandler, message: Any) -> None:
    for _ in range(200):
        try:
            await handler.handle(message)
            return
        except OpeningInProgress:
            await asyncio.sleep(0.01)  # redelivered a moment later
    raise AssertionError("never settled")


async def test_two_replicas_handling_one_message_at_once_open_one_conversation(
        kafka_topics: InfraSettings, mongo: Any, redis: Any) -> None:
    async with running_router(kafka_topics, consume=False) as one, running_router(kafka_topics, consume=False) as two:
        for n in range(ROUNDS):
            message = inbound(user=f"u{n}", text=f"hello {n}")
            await asyncio.gather(_handle_until_done(InboundHandler(one.engine), message),
                                 _handle_until_done(InboundHandler(two.engine), message))
        db = mongo[kafka_topics.database_name("router")]
        for n in range(ROUNDS):
            convs = [doc async for doc in db["conversations"].find({"external_user_id": f"u{n}"})]
            assert len(convs) == 1, f"u{n}: {len(convs)} conversations"
            pointer = await db["open_conversations"].find_one({"_id": f"acme|wa-1|u{n}"})
            assert pointer is not None and pointer["conversation_id"] == convs[0]["_id"]
            assert await db["timeline"].count_documents({"conversation_id": convs[0]["_id"], "kind": "inbound"}) == 1


async def test_a_delivery_finding_another_one_mid_way_waits_for_it_instead_of_opening_a_second(
        router: Router, mongo: Any) -> None:
    db = mongo[router.infra.database_name("router")]
    # the other delivery claimed the key and has not stored its conversation yet
    await db["open_conversations"].insert_one({"_id": "acme|wa-1|u1", "conversation_id": "theirs", "tenant_id": "acme",
                                               "claimed_at": datetime.now(UTC)})
    with pytest.raises(OpeningInProgress):
        await InboundHandler(router.engine).handle(inbound(user="u1"))
    assert (await db["open_conversations"].find_one({"_id": "acme|wa-1|u1"}))["conversation_id"] == "theirs"
    assert await db["conversations"].count_documents({}) == 0


async def test_a_delivery_finding_another_one_mid_way_joins_it_once_it_is_stored(router: Router, mongo: Any) -> None:
    db = mongo[router.infra.database_name("router")]
    first = inbound(user="u1", text="first", message_id="m1")
    await InboundHandler(router.engine).handle(first)
    [theirs] = [doc async for doc in db["conversations"].find({"external_user_id": "u1"})]
    # as if the other delivery had just claimed the key and were about to store its conversation
    await db["conversations"].delete_one({"_id": theirs["_id"]})
    await db["open_conversations"].update_one({"_id": "acme|wa-1|u1"}, {"$set": {"claimed_at": datetime.now(UTC)}})

    async def store_theirs_a_moment_later() -> None:
        await asyncio.sleep(0.06)
        await db["conversations"].insert_one(theirs)

    await asyncio.gather(store_theirs_a_moment_later(),
                         InboundHandler(router.engine).handle(inbound(user="u1", text="second", message_id="m2")))
    assert await db["conversations"].count_documents({"external_user_id": "u1"}) == 1
    assert await db["timeline"].count_documents({"conversation_id": theirs["_id"], "kind": "inbound"}) == 2


async def test_a_pointer_left_by_a_crashed_attempt_is_cleared_once_old(router: Router, mongo: Any) -> None:
    db = mongo[router.infra.database_name("router")]
    await db["open_conversations"].insert_one({"_id": "acme|wa-1|u1", "conversation_id": "gone", "tenant_id": "acme"})
    await InboundHandler(router.engine).handle(inbound(user="u1"))  # no claim time: an old pointer
    [conv] = [doc async for doc in db["conversations"].find({"external_user_id": "u1"})]
    assert (await db["open_conversations"].find_one({"_id": "acme|wa-1|u1"}))["conversation_id"] == conv["_id"]


async def test_a_failed_insert_gives_its_claim_back_so_the_redelivery_opens_at_once(router: Router, mongo: Any) -> None:
    db = mongo[router.infra.database_name("router")]
    conversations = router.engine.stores.conversations

    async def database_down(docs: list[Any]) -> list[None]:
        raise AutoReconnect("connection refused")

    working = conversations._inserts
    conversations._inserts = TickBatcher(database_down)  # fault injected into our own adapter, the rest is real
    with pytest.raises(AutoReconnect):
        await InboundHandler(router.engine).handle(inbound(user="u1"))
    assert await db["open_conversations"].find_one({"_id": "acme|wa-1|u1"}) is None

    conversations._inserts = working
    await InboundHandler(router.engine).handle(inbound(user="u1"))  # the redelivery
    assert await db["conversations"].count_documents({"external_user_id": "u1"}) == 1


def changes(published: list[tuple[str, str, str]]) -> list[str]:
    return [change for _, change, _ in published]


async def test_a_conversation_stored_already_offered_by_an_attempt_that_stopped_there_is_announced_by_the_redelivery(
        router: Router, mongo: Any) -> None:
    await router.agent("ann", ["default"], capacity=2)
    message = inbound(user="u1", text="hello", message_id="m1")
    published = published_events(router, stop_at_first=True)
    with pytest.raises(ProcessGone):
        await InboundHandler(router.engine).handle(message)
    db = mongo[router.infra.database_name("router")]
    [stored] = [doc async for doc in db["conversations"].find({"external_user_id": "u1"})]
    assert (changes(published), stored["status"], stored["assignee"]["id"], stored["opened_by"]) == (
        ["stopped"], "assigned", "ann", "m1")

    await InboundHandler(router.engine).handle(message)  # the redelivery

    assert changes(published) == ["stopped", "opened", "offered"]
    batches = await record_batches(router.infra, CONVERSATIONS_EVENTS)
    assert [[event["change"] for event in batch] for batch in batches] == [["opened", "offered"]]
    got = await router.ok("GET", f"/v1/conversations/{stored['_id']}")
    assert (got["status"], got["assignee"]) == ("assigned", {"kind": "agent", "id": "ann"})
    entries = await router.ok("GET", f"/v1/conversations/{stored['_id']}/timeline")
    assert [(entry["kind"], entry.get("change")) for entry in entries["items"]] == [
        ("inbound", None), ("activity", "offered")]


async def test_a_conversation_stored_queued_by_an_attempt_that_stopped_there_is_offered_by_the_redelivery(
        router: Router, mongo: Any) -> None:
    message = inbound(user="u1", text="hello", message_id="m1")
    published = published_events(router, stop_at_first=True)
    with pytest.raises(ProcessGone):
        await InboundHandler(router.engine).handle(message)  # nobody online: stored queued
    db = mongo[router.infra.database_name("router")]
    [stored] = [doc async for doc in db["conversations"].find({"external_user_id": "u1"})]
    assert (changes(published), stored["status"], stored["opened_by"]) == (["stopped"], "queued", "m1")
    await router.agent("ann", ["default"], capacity=2, online=False)
    await router.engine.stores.presence.heartbeat("acme", "ann", Presence.ONLINE)  # online, without a dispatch

    await InboundHandler(router.engine).handle(message)  # the redelivery

    got = await router.ok("GET", f"/v1/conversations/{stored['_id']}")
    assert (got["status"], got["assignee"]) == ("assigned", {"kind": "agent", "id": "ann"})
    assert changes(published) == ["stopped", "opened", "offered"]
    assert await db["conversations"].count_documents({"external_user_id": "u1"}) == 1
    assert await db["timeline"].count_documents({"conversation_id": stored["_id"], "kind": "inbound"}) == 1


async def test_an_opened_event_published_again_by_the_redelivery_carries_the_same_event_id(router: Router) -> None:
    """A crash after `opened` was published and before the message's offset was committed: the redelivery
    announces the conversation again (it cannot know the first copy went out). Both copies have one event id,
    so subscribers de-duplicating on event ids see one `opened` (issue 18: 26 of 11,688 were published twice)."""
    await router.agent("ann", ["default"], capacity=2)
    message = inbound(user="u1", text="hello", message_id="m1")
    sent: list[Any] = []
    publish_together = router.engine.publisher.publish_together

    async def crash_after_first_publish(events: Any, topic: Any) -> None:
        first = not sent
        sent.extend(events)
        await publish_together(events, topic)
        if first:
            raise ProcessGone  # `opened` (with `offered`) went out; the process dies before anything else

    router.engine.publisher.publish_together = crash_after_first_publish  # type: ignore[method-assign]
    with pytest.raises(ProcessGone):
        await InboundHandler(router.engine).handle(message)
    await InboundHandler(router.engine).handle(message)  # the redelivery

    opened = [event for event in sent if event.change == "opened"]
    assert len(opened) == 2 and opened[0].event_id == opened[1].event_id
    assert opened[0].conversation_id == opened[1].conversation_id
