"""Live updates carry the message: an inbound message published on the real broker reaches an SSE client
(a real HTTP connection to the app served by uvicorn) with its text, read once per event by the replica."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from parley_common.tasks import running
from parley_common.topics import INBOUND_MESSAGES, OUTBOUND_MESSAGES

from .conftest import Router, eventually, inbound, later
from .test_consumers import reply


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """The (already started) app on a real local port; its lifespan is the test fixture's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started), within=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def next_event(lines: AsyncIterator[str], change: str) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == f"conversation.{change}":
            data: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("stream ended")


@asynccontextmanager
async def ann_watching(router: Router) -> AsyncIterator[AsyncIterator[str]]:
    """Agent ann (team default) connected to the stream over real HTTP: the stream's lines."""
    await router.agent("ann", ["default"], capacity=3)
    async with served(router.app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
        headers = router.auth("ann", ["agent"])
        async with client.stream("GET", "/v1/conversations/stream", headers=headers) as response:
            lines = response.aiter_lines()
            assert await asyncio.wait_for(lines.__anext__(), 10) == ": connected"
            yield lines


async def test_inbound_message_reaches_the_sse_client_with_its_text(consuming_router: Router) -> None:
    router = consuming_router
    async with ann_watching(router) as lines:
        await router.engine.publisher.publish(inbound(text="where is my order?", message_id="m1"), INBOUND_MESSAGES)
        opened = await asyncio.wait_for(next_event(lines, "opened"), 30)
        assert opened["entry"]["text"] == "where is my order?"
        assert [(p["kind"], p["text"]) for p in opened["entry"]["parts"]] == [("text", "where is my order?")]
        assert (opened["entry"]["kind"], opened["entry"]["sender"]) == ("inbound", "customer")

        await router.engine.publisher.publish(inbound(text="order 42", message_id="m2", at=later(1)),
                                              INBOUND_MESSAGES)
        appended = await asyncio.wait_for(next_event(lines, "message_appended"), 30)
        assert appended["conversation_id"] == opened["conversation_id"]
        assert (appended["entry_id"], appended["entry"]["text"]) == ("in:m2", "order 42")
        assert appended["entry"]["at"].startswith(later(1).isoformat()[:19])


async def test_delivery_ticks_of_an_agent_reply_reach_the_sse_client(consuming_router: Router) -> None:
    router = consuming_router
    async with ann_watching(router) as lines:
        await router.engine.publisher.publish(inbound(text="hello", message_id="m1"), INBOUND_MESSAGES)
        opened = await asyncio.wait_for(next_event(lines, "opened"), 30)

        publish = router.engine.publisher.publish
        await publish(reply("sent", minutes=2), OUTBOUND_MESSAGES)
        await publish(reply("read", minutes=4), OUTBOUND_MESSAGES)
        await publish(reply("delivered", minutes=3), OUTBOUND_MESSAGES)  # late: moves nothing, says nothing
        await publish(reply("sent", message_id="m2", minutes=5), OUTBOUND_MESSAGES)  # same partition: a marker

        seen = await asyncio.wait_for(_changes_until(lines, "out:m2"), 30)
    ticks = [data for change, data in seen if change == "message_status"]
    assert [(t["conversation_id"], t["entry_id"], t["entry"]["status"]) for t in ticks] == [
        (opened["conversation_id"], "out:m1", "read")]
    assert ticks[0]["assignee"] == {"kind": "agent", "id": "ann"}


async def _changes_until(lines: AsyncIterator[str], entry_id: str) -> list[tuple[str, dict[str, Any]]]:
    seen, event = [], None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: conversation.")
        elif line.startswith("data: ") and event:
            data = json.loads(line.removeprefix("data: "))
            seen.append((event, data))
            if data.get("entry_id") == entry_id:
                return seen
    raise AssertionError("stream ended")


async def test_the_live_consumer_of_a_replica_nobody_has_watched_yet_stops_fetching_without_waiting_a_minute(
        consuming_router: Router) -> None:
    """The app's own pause loop (a minute after the last stream closed): a replica on which no stream was ever
    opened keeps nothing to resume from, so it pauses as soon as the consumer has its partitions; the first stream
    resumes it."""
    router = consuming_router
    hub = router.app.state.live_hub
    await eventually(lambda: asyncio.sleep(0, hub.follower.paused), within=30)  # not PAUSE_AFTER_SECONDS (60)
    async with ann_watching(router) as lines:
        assert not hub.follower.paused
        await router.engine.publisher.publish(inbound(text="after the pause", message_id="m1"), INBOUND_MESSAGES)
        opened = await asyncio.wait_for(next_event(lines, "opened"), 30)
        assert opened["entry"]["text"] == "after the pause"


async def test_the_live_consumer_pauses_while_nobody_watches_and_resumes_from_now(consuming_router: Router) -> None:
    router = consuming_router
    hub = router.app.state.live_hub
    async with running(hub.pause_while_unwatched(after=0.1)):
        async with ann_watching(router) as lines:
            await router.engine.publisher.publish(inbound(text="first", message_id="m1"), INBOUND_MESSAGES)
            opened = await asyncio.wait_for(next_event(lines, "opened"), 30)
        await eventually(lambda: asyncio.sleep(0, hub.follower.paused), within=30)  # nobody watches: no fetching

        await router.engine.publisher.publish(inbound(text="unseen", message_id="m2", at=later(1)), INBOUND_MESSAGES)
        timeline = f"/v1/conversations/{opened['conversation_id']}/timeline"

        async def stored() -> bool:
            return any(item.get("text") == "unseen" for item in (await router.ok("GET", timeline))["items"])

        await eventually(stored, within=30)  # its change was published while the live consumer was paused
        async with served(router.app) as base, httpx.AsyncClient(base_url=base, timeout=30) as client:
            headers = {**router.auth("ann", ["agent"]), "Last-Event-ID": opened["event_id"]}
            async with client.stream("GET", "/v1/conversations/stream", headers=headers) as response:
                lines = response.aiter_lines()
                assert await asyncio.wait_for(lines.__anext__(), 10) == ": connected"
                assert not hub.follower.paused
                await router.engine.publisher.publish(inbound(text="seen", message_id="m3", at=later(2)),
                                                      INBOUND_MESSAGES)
                seen = await asyncio.wait_for(_changes_until(lines, "in:m3"), 30)
    # the kept events were dropped at the pause (the stream was told to refetch), and what happened while paused
    # is not replayed as live
    assert ("event: reset", {"last_event_id": opened["event_id"]}) in seen
    assert [data.get("entry_id") for change, data in seen if change == "message_appended"] == ["in:m3"]
