"""The consumers on the real broker: inbound, contacts, outbound, media, commands; replay changes nothing;
the conversation events come out on parley.conversations.events.v1."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from parley_common.events.contacts import ContactBlocked, ContactUnblocked, Identity
from parley_common.events.conversations import ConversationActionRequested
from parley_common.events.media import MediaStored
from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender
from parley_common.topics import (
    CONTACTS_EVENTS,
    CONVERSATIONS_COMMANDS,
    CONVERSATIONS_EVENTS,
    INBOUND_MESSAGES,
    MEDIA_EVENTS,
    OUTBOUND_MESSAGES,
)

from .conftest import T0, Router, eventually, inbound, later


async def conversations(router: Router, **params: Any) -> list[dict[str, Any]]:
    return (await router.ok("GET", "/v1/conversations", params=params))["items"]


async def timeline(router: Router, cid: str) -> list[dict[str, Any]]:
    return (await router.ok("GET", f"/v1/conversations/{cid}/timeline"))["items"]


def reply(status: str, message_id: str = "m1", login: str = "ann", minutes: float = 2) -> OutboundMessageUpdated:
    at = later(minutes)
    return OutboundMessageUpdated(
        occurred_at=at, tenant_id="acme", correlation_id="c", channel_id="wa-1", external_user_id="u1",
        message_id=message_id, channel_type="whatsapp", status=status, sender=Sender(kind="human", login=login),
        content=OutboundText(text="on it"), provider_message_id=f"wamid.out.{message_id}", status_at=at)


async def test_inbound_opens_one_conversation_replay_changes_nothing_reply_assigns(
        consuming_router: Router) -> None:
    router = consuming_router
    publish = router.engine.publisher.publish
    first, second = inbound(text="hello", at=T0), inbound(text="anyone?", at=later(1))
    for event in (first, second, first):  # the replayed first message must change nothing
        await publish(event, INBOUND_MESSAGES)
    await publish(inbound(user="u2", text="other"), INBOUND_MESSAGES)
    await eventually(lambda: _count(router, 2))
    [conv] = [c for c in await conversations(router) if c["external_user_id"] == "u1"]
    entries = await eventually(lambda: _inbound_entries(router, conv["id"], 2))
    assert [e["text"] for e in entries] == ["hello", "anyone?"]

    await publish(reply("queued", minutes=2), OUTBOUND_MESSAGES)
    await publish(reply("read", minutes=4), OUTBOUND_MESSAGES)
    await publish(reply("delivered", minutes=3), OUTBOUND_MESSAGES)  # late: must not move the status back
    await eventually(lambda: _late_status_kept(router, conv["id"]))
    got = await router.ok("GET", f"/v1/conversations/{conv['id']}")
    assert (got["status"], got["assignee"]["id"], got["unanswered"]) == ("assigned", "ann", False)
    assert got["first_response_seconds"] == 120
    out = [e for e in await timeline(router, conv["id"]) if e["kind"] == "outbound"]
    assert out[0]["sender"]["login"] == "ann" and set(out[0]["statuses"]) == {"queued", "read", "delivered"}

    stored = MediaStored(occurred_at=T0, tenant_id="acme", correlation_id="c", channel_id="wa-1",
                         external_user_id="u1", media_id="med-1", provider_message_id="wamid.hello",
                         attachment_id="wamid.hello:0", mime_type="image/jpeg", size_bytes=10, sha256="ab",
                         expires_at=T0 + timedelta(days=7))
    await publish(stored, MEDIA_EVENTS)
    await eventually(lambda: _has_media(router, conv["id"]))

    close = ConversationActionRequested(occurred_at=later(5), tenant_id="acme", correlation_id="c",
                                        channel_id="wa-1", external_user_id="u1", action="close", actor="ann",
                                        comment="done")
    await publish(close, CONVERSATIONS_COMMANDS)
    await eventually(lambda: _status(router, conv["id"], "closed"))
    await publish(inbound(text="me again", at=later(60)), INBOUND_MESSAGES)  # a closed thread: a new one
    await eventually(lambda: _count(router, 3))

    changes = await read_changes(router, {"opened", "message_appended", "assigned", "closed"})
    assert sum(1 for c in changes if c.change == "opened") == 3


async def test_two_messages_of_one_second_show_in_the_order_they_arrived_not_by_their_ids(
        consuming_router: Router) -> None:
    router = consuming_router
    # WhatsApp's timestamps are whole seconds: both messages say T0; ingest received "wamid.z…" first
    first = inbound(text="I need", message_id="wamid.zz").model_copy(
        update={"received_at": T0 + timedelta(milliseconds=200)})
    second = inbound(text="a refund", message_id="wamid.aa").model_copy(
        update={"received_at": T0 + timedelta(milliseconds=700)})
    for event in (first, second):
        await router.engine.publisher.publish(event, INBOUND_MESSAGES)
    await eventually(lambda: _count(router, 1))
    [conv] = await conversations(router)
    entries = await eventually(lambda: _inbound_entries(router, conv["id"], 2))
    assert [e["text"] for e in entries] == ["I need", "a refund"]
    # the second message changed nothing of its conversation (the same second): the screens hear of it still
    appended = [c for c in await read_changes(router, {"message_appended"}) if c.change == "message_appended"]
    assert [c.entry_id for c in appended] == ["in:wamid.aa"]
    whole = await timeline(router, conv["id"])
    path, paged, cursor = f"/v1/conversations/{conv['id']}/timeline", [], None
    for _ in whole:  # a page at a time: the same entries in the same order
        page = await router.ok("GET", path, params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["entry_id"] for e in paged] == [e["entry_id"] for e in whole]
    refused = await router.call("GET", path, params={"cursor": "not-ours"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_cursor")


async def test_the_newest_page_first_and_the_pages_before_it_in_timeline_order(consuming_router: Router) -> None:
    router = consuming_router
    same_second = [inbound(text=text, message_id=wamid).model_copy(
        update={"received_at": T0 + timedelta(milliseconds=ms)})
        for text, wamid, ms in (("one", "wamid.zz", 200), ("two", "wamid.aa", 700))]
    for event in [*same_second, *(inbound(text=f"then {n}", at=later(n)) for n in (1, 2, 3))]:
        await router.engine.publisher.publish(event, INBOUND_MESSAGES)
    await eventually(lambda: _count(router, 1))
    [conv] = await conversations(router)
    await eventually(lambda: _inbound_entries(router, conv["id"], 5))
    whole = await timeline(router, conv["id"])  # the messages and the activity they caused (no received_at)
    path = f"/v1/conversations/{conv['id']}/timeline"
    newest = await router.ok("GET", path, params={"from": "latest", "limit": 2})
    assert newest["items"] == whole[-2:] and newest["next_cursor"] is None
    pages, page = [newest["items"]], newest
    while page["previous_cursor"] is not None:  # back to the first entry, a page at a time
        page = await router.ok("GET", path, params={"before": page["previous_cursor"], "limit": 2})
        pages.insert(0, page["items"])
    assert [e["entry_id"] for items in pages for e in items] == [e["entry_id"] for e in whole]
    assert all(len(items) == 2 for items in pages[1:]) and len(whole) > 4
    onward = await router.ok("GET", path, params={"cursor": page["next_cursor"], "limit": 500})
    assert onward["items"] == whole[len(pages[0]):] and onward["previous_cursor"] is not None
    refusals = [await router.call("GET", path, params=params)
                for params in ({"before": "not-ours"}, {"from": "latest", "before": newest["previous_cursor"]})]
    codes = [(refused.status_code, refused.json()["error"]["code"]) for refused in refusals]
    assert codes == [(422, "invalid_cursor"), (422, "conflicting_cursors")]


async def test_blocked_customer_is_stored_and_routed_nowhere(consuming_router: Router) -> None:
    router = consuming_router
    publish = router.engine.publisher.publish
    identity = Identity(channel_id="wa-1", external_user_id="spam")
    await publish(ContactBlocked(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id="k1",
                                 identity=identity), CONTACTS_EVENTS)
    await asyncio.sleep(0.5)  # different topic: give the block a head start
    await eventually(lambda: router.engine.stores.directory.is_blocked(_key("spam")))
    await publish(inbound(user="spam", text="buy now"), INBOUND_MESSAGES)
    blocked = await eventually(lambda: _listed(router, blocked="true"))
    assert blocked[0]["blocked"] and blocked[0]["assignee"] is None
    assert await conversations(router) == []  # not in the normal inbox
    entries = await timeline(router, blocked[0]["id"])
    assert entries[0]["blocked"] is True
    await publish(ContactUnblocked(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id="k1",
                                   identity=identity), CONTACTS_EVENTS)
    await eventually(lambda: _not(router.engine.stores.directory.is_blocked(_key("spam"))))


def _key(user: str) -> Any:
    from parley_common.ids import ConversationKey
    return ConversationKey("acme", "wa-1", user)


async def _not(awaitable: Any) -> bool:
    return not await awaitable


async def _listed(router: Router, **params: Any) -> list[dict[str, Any]]:
    return await conversations(router, **params)


async def _count(router: Router, wanted: int) -> bool:
    """`wanted` conversations in all (the list shows closed ones too: counted once)."""
    listed = [*await conversations(router), *await conversations(router, status="closed")]
    return len({conv["id"] for conv in listed}) == wanted


async def _inbound_entries(router: Router, cid: str, wanted: int) -> list[dict[str, Any]] | None:
    entries = [e for e in await timeline(router, cid) if e["kind"] == "inbound"]
    return entries if len(entries) == wanted else None


async def _late_status_kept(router: Router, cid: str) -> bool:
    """The late `delivered` was handled (its time recorded) and the status stayed `read`."""
    return any(e.get("status") == "read" and "delivered" in e.get("statuses", {})
               for e in await timeline(router, cid) if e["kind"] == "outbound")


async def _has_media(router: Router, cid: str) -> bool:
    return any(e.get("media") for e in await timeline(router, cid))


async def _status(router: Router, cid: str, status: str) -> bool:
    return (await router.ok("GET", f"/v1/conversations/{cid}"))["status"] == status


async def read_changes(router: Router, wanted: set[str], within: float = 30.0) -> list[Any]:
    """Every ConversationChanged on the topic, read until each change in `wanted` was seen."""
    namespace = router.engine.publisher.namespace
    consumer = AIOKafkaConsumer(CONVERSATIONS_EVENTS.name(namespace), bootstrap_servers=router.infra.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{namespace}")
    await consumer.start()
    try:
        found: list[Any] = []
        deadline = asyncio.get_running_loop().time() + within
        while not wanted <= {event.change for event in found}:
            assert asyncio.get_running_loop().time() < deadline, f"only saw {[e.change for e in found]}"
            batch = await consumer.getmany(timeout_ms=500)
            found += [CONVERSATIONS_EVENTS.parse(r.value) for records in batch.values() for r in records]
        await asyncio.sleep(1.0)  # and whatever else was already on its way
        batch = await consumer.getmany(timeout_ms=500)
        return found + [CONVERSATIONS_EVENTS.parse(r.value) for records in batch.values() for r in records]
    finally:
        await consumer.stop()
