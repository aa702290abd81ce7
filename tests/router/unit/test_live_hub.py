"""The live hub reads a message's timeline entry once per event (not per watcher, not when nobody may see
it) and sends it along in the SSE data; activity entries are not read."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from parley_common.auth import Principal, Role
from parley_common.events.contacts import ContactCommented
from parley_common.events.conversations import Assignee, ConversationChanged
from parley_router.handlers.live import LiveHub, Watcher

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


class CountingEntries:
    def __init__(self) -> None:
        self.reads: list[str] = []

    async def entry(self, tenant_id: str, conversation_id: str, entry_id: str) -> dict[str, Any] | None:
        self.reads.append(entry_id)
        return {"entry_id": entry_id, "kind": "inbound", "text": "hi", "at": NOW, "tenant_id": tenant_id,
                "rank": 0}


class RecordingCounter:
    """A tab counter that answers `counts` and records whose counts it was asked for."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts
        self.calls: list[str] = []

    async def __call__(self, principal: Principal, teams: frozenset[str]) -> dict[str, int]:
        self.calls.append(principal.login)
        return self.counts


def changed(entry_id: str | None, team: str = "sales", tenant: str = "acme") -> ConversationChanged:
    return ConversationChanged(occurred_at=NOW, tenant_id=tenant, correlation_id="c", channel_id="wa-1",
                               external_user_id="u1", conversation_id="c1", change="message_appended",
                               status="queued", changed_at=NOW, team_id=team, entry_id=entry_id)


def watcher(login: str, roles: list[Role], teams: set[str], tenant: str = "acme") -> Watcher:
    return Watcher(Principal(tenant_id=tenant, login=login, roles=frozenset(roles)), frozenset(teams))


async def test_entry_read_once_for_all_watchers_who_may_see_it() -> None:
    source = CountingEntries()
    hub = LiveHub(source)
    sales, boss, support, stranger = (watcher("ann", [Role.AGENT], {"sales"}), watcher("boss", [Role.MANAGER], set()),
                                      watcher("bob", [Role.AGENT], {"support"}),
                                      watcher("eve", [Role.MANAGER], set(), tenant="other"))
    for one in (sales, boss, support, stranger):
        hub.watch(one)

    await hub.deliver(changed("in:m1"))
    await hub.deliver(changed("act:00000003"))
    await hub.deliver(changed("in:m2", team="nobody", tenant="third"))  # nobody may see it: not read

    assert source.reads == ["in:m1"]
    assert support.queue.empty() and stranger.queue.empty()
    frames = [sales.queue.get_nowait(), boss.queue.get_nowait()]
    assert frames[0] == frames[1]
    data = json.loads(frames[0].split("data: ", 1)[1])
    assert data["entry"] == {"entry_id": "in:m1", "kind": "inbound", "text": "hi", "at": NOW.isoformat()}
    activity = json.loads(sales.queue.get_nowait().split("data: ", 1)[1])
    assert "entry" not in activity and activity["entry_id"] == "act:00000003"


async def test_stream_sends_the_frames_and_forgets_the_watcher_when_closed() -> None:
    hub = LiveHub()
    one = watcher("boss", [Role.MANAGER], set())
    stream = hub.stream(one)
    assert await stream.__anext__() == ": connected\n\n"
    await hub.deliver(changed("in:m1"))
    frame = await asyncio.wait_for(stream.__anext__(), 5)
    assert frame.startswith("id: ") and "event: conversation.message_appended\n" in frame
    assert "entry" not in json.loads(frame.split("data: ", 1)[1])  # no entry source: the event alone
    await stream.aclose()
    await hub.deliver(changed("in:m2"))
    assert one.queue.empty()


async def test_a_reconnect_gets_what_it_may_see_after_its_last_event_and_an_unknown_id_gets_reset() -> None:
    hub = LiveHub(CountingEntries())
    events = [changed(f"in:m{n}", team="sales" if n != 2 else "support") for n in range(4)]
    for event in events:
        await hub.deliver(event)
    ann = watcher("ann", [Role.AGENT], {"sales"})
    missed = hub.missed(ann, str(events[0].event_id))
    assert [event.entry_id for event in missed or []] == ["in:m1", "in:m3"]
    assert hub.missed(ann, "not-kept") is None

    stream = hub.stream(ann, keepalive=0.05, last_event_id=str(events[0].event_id))
    assert await anext(stream) == ": connected\n\n"
    replayed = [await anext(stream), await anext(stream)]
    assert [json.loads(frame.split("data: ", 1)[1])["entry_id"] for frame in replayed] == ["in:m1", "in:m3"]
    await stream.aclose()
    lost = hub.stream(ann, keepalive=0.05, last_event_id="not-kept")
    await anext(lost)
    assert (await anext(lost)).startswith("event: reset\n")
    await lost.aclose()


async def test_tab_counts_are_pushed_on_connect_and_after_changes_shared_by_one_scope() -> None:
    counter = RecordingCounter({"queued": 3, "unanswered": 1000})
    hub = LiveHub(CountingEntries(), counter)
    boss, other_boss = watcher("boss", [Role.MANAGER], set()), watcher("sue", [Role.MANAGER], set())
    first, second = hub.stream(boss, keepalive=0.05), hub.stream(other_boss, keepalive=0.05)
    for stream in (first, second):
        assert await anext(stream) == ": connected\n\n"
        frame = await anext(stream)
        assert frame.startswith("event: counts\n")
        assert json.loads(frame.split("data: ", 1)[1]) == {"counts": {"queued": 3, "unanswered": 1000}}
    assert counter.calls == ["boss"]  # managers of one tenant share the count
    await first.aclose()
    await second.aclose()


async def test_a_bot_sees_its_conversations_and_the_event_that_took_one_from_it_without_counts() -> None:
    counter = RecordingCounter({"queued": 1})
    hub = LiveHub(CountingEntries(), counter)
    bot = watcher("faq-bot", [Role.INTEGRATION], set())
    hub.watch(bot)
    faq, other = Assignee(kind="bot", id="faq-bot"), Assignee(kind="bot", id="other-bot")
    team = Assignee(kind="team", id="sales")
    for assignee, previous, tenant in ((faq, None, "acme"), (other, None, "acme"), (team, faq, "acme"),
                                       (team, None, "acme"), (faq, None, "globex")):
        await hub.deliver(changed("in:m1", tenant=tenant).model_copy(
            update={"assignee": assignee, "previous_assignee": previous}))
    seen = [json.loads(bot.queue.get_nowait().split("data: ", 1)[1]) for _ in range(bot.queue.qsize())]
    assert [(event["assignee"]["id"], (event["previous_assignee"] or {}).get("id")) for event in seen] == [
        ("faq-bot", None), ("sales", "faq-bot")]
    stream = hub.stream(watcher("faq-bot", [Role.INTEGRATION], set()), keepalive=0.05)
    assert await anext(stream) == ": connected\n\n"
    assert await anext(stream) == ": keepalive\n\n"  # no tab counts: a bot has no inbox
    await stream.aclose()
    assert counter.calls == []


async def test_a_mention_goes_to_the_mentioned_staffs_streams_only_without_text_or_counts() -> None:
    counter = RecordingCounter({"mine": 0})
    hub = LiveHub(CountingEntries(), counter)
    bob, ann, bob_elsewhere = (watcher("bob", [Role.AGENT], {"support"}), watcher("ann", [Role.AGENT], {"support"}),
                               watcher("bob", [Role.AGENT], {"support"}, tenant="other"))
    for one in (bob, ann, bob_elsewhere):
        hub.watch(one)
    hub.mention(ContactCommented(occurred_at=NOW, tenant_id="acme", correlation_id="c", contact_id="k1",
                                 comment_id="m1", author="ann", mentions=("bob", "carol")))
    assert ann.queue.empty() and bob_elsewhere.queue.empty()
    frame = bob.queue.get_nowait()
    assert frame.startswith("event: mention\n")
    assert json.loads(frame.split("data: ", 1)[1]) == {"contact_id": "k1", "comment_id": "m1", "author": "ann"}

    hub.mention(ContactCommented(occurred_at=NOW, tenant_id="acme", correlation_id="c", contact_id="k1",
                                 comment_id="m2", author="ann", mentions=("bob",)))
    stream = hub.stream(bob, keepalive=0.05)
    assert await anext(stream) == ": connected\n\n"
    assert (await anext(stream)).startswith("event: counts\n")  # on connect
    assert (await anext(stream)).startswith("event: mention\n")
    assert await anext(stream) == ": keepalive\n\n"  # a mention changes no tab: no counts pushed after it
    await stream.aclose()
    assert counter.calls == ["bob"]
