"""Live updates for agents' screens: every replica follows parley.conversations.events.v1 (from the latest
offset, no consumer group: each replica sees every change, whoever made it) and fans each event out to the
server-sent-event streams whose caller may see that conversation.

An event about a message or note (`entry_id` not an activity entry) is enriched here with the timeline entry
itself (`entry` in the SSE data: kind, at, text, parts, sender, delivery status, media), read once per event on
this replica and only when someone may see it — the Kafka event stays lean (no message bodies on the topic)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from pymongo.errors import PyMongoError

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.events.conversations import ConversationChanged
from parley_common.kafka import follow_from_now
from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.handlers.deps import engine_of, teams_of

KEEPALIVE_SECONDS = 15.0
QUEUE_LIMIT = 1000  # a stalled screen loses its oldest updates rather than holding the replica's memory
# The inbound consumer publishes `message_appended` just before it writes the message entry: wait that long.
ENTRY_WAITS = (0.02, 0.05, 0.1, 0.2)


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
        if self.principal.has_any(MANAGERS):
            return True
        agent = event.assignee.id if event.assignee and event.assignee.kind == "agent" else None
        return event.team_id in self.teams or agent == self.principal.login


class LiveHub:
    def __init__(self, entries: EntrySource | None = None) -> None:
        self._watchers: set[Watcher] = set()
        self._entries = entries

    def watch(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)

    def forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    async def deliver(self, event: ConversationChanged) -> None:
        watchers = [watcher for watcher in self._watchers if watcher.may_see(event)]
        if not watchers:
            return
        frame = _frame(event, await self._entry_of(event))  # read and serialized once, for every watcher
        for watcher in watchers:
            if watcher.queue.full():
                watcher.queue.get_nowait()
            watcher.queue.put_nowait(frame)

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

    async def stream(self, watcher: Watcher, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
        """Server-sent events for one watcher until the client goes away."""
        self.watch(watcher)
        try:
            yield ": connected\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(watcher.queue.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
        finally:
            self.forget(watcher)


def _frame(event: ConversationChanged, entry: dict[str, Any] | None) -> str:
    data = event.model_dump(mode="json")
    if entry is not None:
        data["entry"] = {k: v for k, v in entry.items() if k not in ("tenant_id", "rank", "status_rank")}
    text = json.dumps(data, default=_iso)
    return f"id: {event.event_id}\nevent: conversation.{event.change}\ndata: {text}\n\n"


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def follow_changes(broker: KafkaBroker, hub: LiveHub, namespace: str) -> None:
    async def on_change(message: KafkaMessage) -> None:
        try:
            event = CONVERSATIONS_EVENTS.parse(message.body)
        except ValueError:  # another producer's malformed record: nothing to show
            return
        await hub.deliver(event)

    on_change.__name__ = "router_live_updates"
    follow_from_now(broker, CONVERSATIONS_EVENTS, namespace, on_change,
                    title=f"{CONVERSATIONS_EVENTS.name(namespace)}:live",
                    description="fan-out to server-sent event streams")


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]


@router.get("/stream", summary="Server-sent events: changes to the conversations the caller may see",
            response_class=StreamingResponse)
async def stream(principal: Caller, request: Request) -> StreamingResponse:
    hub: LiveHub = request.app.state.live_hub
    watcher = Watcher(principal, await teams_of(engine_of(request), principal))
    return StreamingResponse(hub.stream(watcher), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
