"""Live updates for agents' screens: every replica follows parley.conversations.events.v1 (from the latest
offset, no consumer group: each replica sees every change, whoever made it) and fans each event out to the
server-sent-event streams whose caller may see that conversation.

An event about a message or note (`entry_id` not an activity entry) is enriched here with the timeline entry
itself (`entry` in the SSE data: kind, at, text, parts, sender, delivery status, media), read once per event on
this replica and only when someone may see it — the Kafka event stays lean (no message bodies on the topic).

A reconnect resumes: the replica keeps its last `REPLAY_LIMIT` events, and a stream opened with `Last-Event-ID`
first replays those after that id the caller may see (entries read again); an id it no longer has (older, or
seen by another replica before this one started) gets `event: reset`: the screen refetches its lists. The
stream also pushes the caller's tab counts (`event: counts`): on connect, then at most every
`COUNTS_EVERY_SECONDS` while changes it may see arrive, shared by the streams of the same scope for that long
(summed from the tab counters the stored transitions keep: one small read).

A comment on a contact that mentions an agent (contacts' `ContactCommented` on parley.contacts.events.v1, also
followed from the latest offset by every replica) is pushed to that agent's streams as `event: mention` (the
contact and comment ids and the author; no text: the screen reads the mentions from contacts, which checks that
the agent may still see that contact). Mentions are not replayed: a screen reads its mentions again on
reconnecting."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from pymongo.errors import PyMongoError

from parley_common.auth import Principal, require_roles
from parley_common.consumer_groups import Follower, follow_from_now
from parley_common.errors import documented_errors
from parley_common.events.contacts import ContactCommented
from parley_common.events.conversations import Assignee as EventAssignee
from parley_common.events.conversations import ConversationChanged
from parley_common.topics import CONTACTS_EVENTS, CONVERSATIONS_EVENTS
from parley_common.visibility import may_see, owner_of, sees_whole_tenant
from parley_router.handlers.deps import STAFF_OR_BOT, acts_as_bot, engine_of, teams_of

KEEPALIVE_SECONDS = 15.0
QUEUE_LIMIT = 1000  # a stalled screen loses its oldest updates rather than holding the replica's memory
# The inbound consumer publishes `message_appended` just before it writes the message entry: wait that long.
ENTRY_WAITS = (0.02, 0.05, 0.1, 0.2)
REPLAY_LIMIT = 5000  # events kept per replica for streams that reconnect with Last-Event-ID
PAUSE_AFTER_SECONDS = 60.0  # the live consumer stops fetching this long after the last stream closed
COUNTS_EVERY_SECONDS = 2.0
Counter = Callable[[Principal, frozenset[str]], Awaitable[dict[str, int]]]


class EntrySource(Protocol):
    async def entry(self, tenant_id: str, conversation_id: str, entry_id: str) -> dict[str, Any] | None: ...


@dataclass(eq=False)
class Watcher:
    principal: Principal
    teams: frozenset[str]
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def may_see(self, event: ConversationChanged) -> bool:
        if event.tenant_id != self.principal.tenant_id:
            return False
        if self.bot is not None:  # its conversations, and the event that took one from it (hand-over, close…)
            return self.bot in (event.assignee, event.previous_assignee)
        return may_see(self.principal, self.teams, owner_of(event))

    @property
    def bot(self) -> EventAssignee | None:
        """A bot's watcher (an integration token without a staff role) sees its own conversations, without tab
        counts (it has no inbox)."""
        return EventAssignee(kind="bot", id=self.principal.login) if acts_as_bot(self.principal) else None


class LiveHub:
    """The streams of this replica, and the events they are sent. With a `follower` (the live consumer), it
    fetches only while someone watches: paused `PAUSE_AFTER_SECONDS` after the last stream closed (the kept events
    are dropped then: a stream resuming with an older Last-Event-ID gets `reset`), or as soon as it has its
    partitions when no stream has been opened on this replica yet (it keeps nothing a stream could resume from),
    resumed from the newest record before the next stream says `connected`. Idle, the consumer would poll the
    broker for nobody."""

    def __init__(self, entries: EntrySource | None = None, counter: Counter | None = None,
                 follower: Follower | None = None) -> None:
        self._watchers: set[Watcher] = set()
        self._entries = entries
        self._recent: deque[ConversationChanged] = deque(maxlen=REPLAY_LIMIT)
        self._counter = counter
        self._counts: dict[tuple[str, ...], tuple[float, dict[str, int]]] = {}  # scope → (when, counts)
        self.follower = follower
        self._unwatched_since = -math.inf  # never watched: nothing kept to resume from, no reason to keep fetching

    def watch(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)

    def forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)
        if not self._watchers:
            self._unwatched_since = time.monotonic()

    async def pause_while_unwatched(self, after: float = PAUSE_AFTER_SECONDS) -> None:
        """Runs until cancelled: pauses the follower once nobody has watched for `after` seconds (at once if
        nobody has watched yet)."""
        while True:
            await asyncio.sleep(min(after, 5.0))
            unwatched = not self._watchers and time.monotonic() - self._unwatched_since >= after
            if unwatched and self.follower is not None and self.follower.pause():
                self._recent.clear()

    async def deliver(self, event: ConversationChanged) -> None:
        self._recent.append(event)
        watchers = [watcher for watcher in self._watchers if watcher.may_see(event)]
        if not watchers:
            return
        frame = _frame(event, await self._entry_of(event))  # read and serialized once, for every watcher
        for watcher in watchers:
            _put(watcher, frame)

    def mention(self, event: ContactCommented) -> None:
        """Tells the mentioned staff's streams; a bot's stream has no mentions."""
        mentioned = set(event.mentions)
        watchers = [watcher for watcher in self._watchers if watcher.bot is None
                    and watcher.principal.tenant_id == event.tenant_id and watcher.principal.login in mentioned]
        data = {"contact_id": event.contact_id, "comment_id": event.comment_id, "author": event.author}
        for watcher in watchers:
            _put(watcher, f"event: mention\ndata: {json.dumps(data)}\n\n")

    async def _entry_of(self, event: ConversationChanged) -> dict[str, Any] | None:
        if self._entries is None or not event.entry_id or event.entry_id.startswith("act:"):
            return None  # activity entries say nothing the event does not
        for wait in (0.0, *ENTRY_WAITS):
            await asyncio.sleep(wait)
            try:
                entry = await self._entries.entry(event.tenant_id, event.conversation_id, event.entry_id)
            except PyMongoError:  # a passing database error: the update still goes out, without its entry
                return None
            if entry is not None:
                return entry
        return None  # still not written (its writer failed and will retry): the screen fetches it later

    def missed(self, watcher: Watcher, last_event_id: str) -> list[ConversationChanged] | None:
        """The kept events after `last_event_id` the watcher may see; None when that id is not kept."""
        ids = [str(event.event_id) for event in self._recent]
        if last_event_id not in ids:
            return None
        return [event for event in list(self._recent)[ids.index(last_event_id) + 1:] if watcher.may_see(event)]

    async def stream(self, watcher: Watcher, keepalive: float = KEEPALIVE_SECONDS,
                     last_event_id: str | None = None) -> AsyncIterator[str]:
        """Server-sent events for one watcher until the client goes away: what it missed since `last_event_id`,
        then live changes, with its tab counts pushed now and then."""
        self.watch(watcher)  # first: nothing that arrives while the missed ones are sent is lost
        try:
            if self.follower is not None:
                await self.follower.resume_from_now()
            yield ": connected\n\n"
            replayed: set[str] = set()
            if last_event_id:
                missed = self.missed(watcher, last_event_id)
                if missed is None:
                    yield f"event: reset\ndata: {json.dumps({'last_event_id': last_event_id})}\n\n"
                for event in missed or ():
                    replayed.add(str(event.event_id))
                    yield _frame(event, await self._entry_of(event))
            async for frame in self._live(watcher, keepalive, replayed):
                yield frame
        finally:
            self.forget(watcher)

    async def _live(self, watcher: Watcher, keepalive: float, replayed: set[str]) -> AsyncIterator[str]:
        counted_at, changed = 0.0, self._counter is not None and watcher.bot is None
        while True:
            due = counted_at + COUNTS_EVERY_SECONDS - time.monotonic()
            if changed and due <= 0:
                yield await self._counts_frame(watcher)
                counted_at, changed = time.monotonic(), False
                continue
            try:
                frame = await asyncio.wait_for(watcher.queue.get(), min(keepalive, due) if changed else keepalive)
            except TimeoutError:
                if not changed:
                    yield ": keepalive\n\n"
                continue
            if not frame.startswith("id: "):  # a mention: no conversation changed
                yield frame
            elif _frame_id(frame) not in replayed:
                changed = self._counter is not None and watcher.bot is None
                yield frame

    async def _counts_frame(self, watcher: Watcher) -> str:
        assert self._counter is not None
        principal = watcher.principal
        scope = (principal.tenant_id, "*") if sees_whole_tenant(principal) else (
            principal.tenant_id, principal.login, *sorted(watcher.teams))
        cached = self._counts.get(scope)
        if cached is None or time.monotonic() - cached[0] >= COUNTS_EVERY_SECONDS:
            cached = (time.monotonic(), await self._counter(principal, watcher.teams))
            self._counts[scope] = cached
        return f"event: counts\ndata: {json.dumps({'counts': cached[1]})}\n\n"


def _put(watcher: Watcher, frame: str) -> None:
    if watcher.queue.full():
        watcher.queue.get_nowait()
    watcher.queue.put_nowait(frame)


def _frame(event: ConversationChanged, entry: dict[str, Any] | None) -> str:
    data = event.model_dump(mode="json")
    if entry is not None:
        data["entry"] = {k: v for k, v in entry.items() if k not in ("tenant_id", "rank", "status_rank")}
    text = json.dumps(data, default=_iso)
    return f"id: {event.event_id}\nevent: conversation.{event.change}\ndata: {text}\n\n"


def _frame_id(frame: str) -> str:
    return frame.split("\n", 1)[0].removeprefix("id: ")


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def follow_changes(broker: KafkaBroker, hub: LiveHub, namespace: str) -> None:
    """One consumer for both topics the screens hear of: conversations' changes and contacts' comments, handed to
    `hub` (which pauses it while unwatched)."""
    conversations_topic = CONVERSATIONS_EVENTS.name(namespace)

    async def on_change(message: KafkaMessage) -> None:
        record: Any = message.raw_message  # one aiokafka record (a single-record subscriber)
        from_conversations = record.topic == conversations_topic
        try:
            event = (CONVERSATIONS_EVENTS if from_conversations else CONTACTS_EVENTS).parse(message.body)
        except ValueError:  # another producer's malformed record: nothing to show
            return
        if isinstance(event, ConversationChanged):
            await hub.deliver(event)
        elif isinstance(event, ContactCommented) and event.mentions:
            hub.mention(event)

    on_change.__name__ = "router_live_updates"
    hub.follower = follow_from_now(
        broker, (CONVERSATIONS_EVENTS, CONTACTS_EVENTS), namespace, on_change, title=f"{conversations_topic}:live",
        description="fan-out to server-sent event streams: conversations' changes, and comments that mention an "
                    "agent (from parley.contacts.events.v1)")


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
StaffOrBot = Annotated[Principal, Depends(require_roles(*STAFF_OR_BOT))]


@router.get("/stream", responses=documented_errors({}),
            summary="Server-sent events: changes to the conversations the caller may see",
            description="`conversation.<change>` events (id = the event id; data = ConversationChanged, with "
                        "`entry` for a message or note); `counts` (data: {counts}: the caller's tabs) on "
                        "connect and at most every 2 s; `mention` (data: {contact_id, comment_id, author}) when a "
                        "comment on a contact mentions the caller; `reset` when `Last-Event-ID` names an event this "
                        "replica no longer keeps (refetch the lists). A bot (integration token) gets the events of the "
                        "conversations it holds and the one that took each from it, without counts.",
            response_class=StreamingResponse)
async def stream(principal: StaffOrBot, request: Request,
                 last_event_id: Annotated[str | None, Header(max_length=64, description="resume after this event "
                                                             "(sent by EventSource on reconnect)")] = None,
                 ) -> StreamingResponse:
    hub: LiveHub = request.app.state.live_hub
    watcher = Watcher(principal, await teams_of(engine_of(request), principal))
    return StreamingResponse(hub.stream(watcher, last_event_id=last_event_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
