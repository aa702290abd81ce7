"""Live updates for agents' screens: every replica follows parley.conversations.events.v1 (from the latest
offset, no consumer group: each replica sees every change, whoever made it) and fans each event out to the
server-sent-event streams whose caller may see that conversation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.events.conversations import ConversationChanged
from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.handlers.deps import engine_of, teams_of

KEEPALIVE_SECONDS = 15.0
QUEUE_LIMIT = 1000  # a stalled screen loses its oldest updates rather than holding the replica's memory


@dataclass(eq=False)
class Watcher:
    principal: Principal
    teams: frozenset[str]
    queue: asyncio.Queue[ConversationChanged] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def may_see(self, event: ConversationChanged) -> bool:
        if event.tenant_id != self.principal.tenant_id:
            return False
        if self.principal.has_any(MANAGERS):
            return True
        agent = event.assignee.id if event.assignee and event.assignee.kind == "agent" else None
        return event.team_id in self.teams or agent == self.principal.login


class LiveHub:
    def __init__(self) -> None:
        self._watchers: set[Watcher] = set()

    def watch(self, watcher: Watcher) -> None:
        self._watchers.add(watcher)

    def forget(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def deliver(self, event: ConversationChanged) -> None:
        for watcher in self._watchers:
            if watcher.may_see(event):
                if watcher.queue.full():
                    watcher.queue.get_nowait()
                watcher.queue.put_nowait(event)

    async def stream(self, watcher: Watcher, keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[str]:
        """Server-sent events for one watcher until the client goes away."""
        self.watch(watcher)
        try:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"id: {event.event_id}\nevent: conversation.{event.change}\ndata: {event.model_dump_json()}\n\n"
        finally:
            self.forget(watcher)


def follow_changes(broker: KafkaBroker, hub: LiveHub, namespace: str) -> None:
    async def on_change(message: KafkaMessage) -> None:
        with contextlib.suppress(ValueError):  # another producer's malformed record: nothing to show
            hub.deliver(CONVERSATIONS_EVENTS.parse(message.body))

    on_change.__name__ = "router_live_updates"
    broker.subscriber(CONVERSATIONS_EVENTS.name(namespace), auto_offset_reset="latest",
                      title=f"{CONVERSATIONS_EVENTS.name(namespace)}:live",
                      description="fan-out to server-sent event streams")(on_change)


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]


@router.get("/stream", summary="Server-sent events: changes to the conversations the caller may see",
            response_class=StreamingResponse)
async def stream(principal: Caller, request: Request) -> StreamingResponse:
    hub: LiveHub = request.app.state.live_hub
    watcher = Watcher(principal, await teams_of(engine_of(request), principal))
    return StreamingResponse(hub.stream(watcher), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
