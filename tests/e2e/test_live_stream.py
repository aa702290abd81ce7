"""The router's live stream as an agent's screen sees it, through the public APIs only (issue 14): each delivery
status of a reply arrives once; a stream that reconnects with Last-Event-ID gets what it missed, and an id the
router no longer has says `reset`; the caller's tab counts are pushed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from e2e_customer import SUPERVISOR, Journey
from e2e_journey import NotYet, eventually, whatsapp_change, whatsapp_status
from e2e_system import WHATSAPP, System

from parley_common.tasks import running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]


@dataclass
class Frame:
    id: str | None
    event: str
    data: dict[str, Any]


@dataclass
class Screen:
    """One open SSE stream, read in the background into `frames`."""
    frames: list[Frame] = field(default_factory=list)

    def about(self, conversation_id: str) -> list[Frame]:
        return [f for f in self.frames if f.data.get("conversation_id") == conversation_id]

    def last_id(self) -> str:
        return [f.id for f in self.frames if f.id][-1]


async def read_stream(client: httpx.AsyncClient, url: str, headers: dict[str, str], screen: Screen) -> None:
    async with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(30.0, read=None)) as response:
        assert response.status_code == 200
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "data" in fields:
                screen.frames.append(Frame(fields.get("id"), fields.get("event", "message"),
                                           json.loads(fields["data"])))
            fields = {}


@contextlib.asynccontextmanager
async def watching(system: System, last_event_id: str | None = None) -> AsyncIterator[Screen]:
    screen = Screen()
    headers = system.auth(SUPERVISOR, "manager")
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    stream = f"{system.url('router')}/v1/conversations/stream"
    async with httpx.AsyncClient() as client, running(read_stream(client, stream, headers, screen)):
        yield screen


async def frames_until(screen: Screen, matches: Any, what: str, within: float = 30.0) -> list[Frame]:
    async def probe() -> list[Frame]:
        found = [frame for frame in screen.frames if matches(frame)]
        if not found:
            raise NotYet(str([(f.event, f.data.get("change")) for f in screen.frames][-10:]))
        return found

    return await eventually(probe, within=within, what=what)


async def test_each_status_once_resume_after_a_reconnect_and_pushed_counts(system: System,
                                                                           http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Is my parcel on its way?")
    conversation, _ = await journey.open_conversation_with(wamid)
    await journey.window_seen()

    async with watching(system) as screen:
        counts = await frames_until(screen, lambda f: f.event == "counts", "tab counts on connect")
        assert counts[0].data["counts"]["queued"] >= 1
        reply = await journey.agent_replies("Yes, it arrives tomorrow.")
        assert reply.status_code == 202, reply.text
        message_id = reply.json()["message_id"]
        sent = await journey.outbound_state(message_id, "sent")
        for status in ("delivered", "read"):
            await journey.deliver(whatsapp_status(journey.phone, sent["provider_message_id"], status,
                                                  int(time.time()), WHATSAPP.phone_number_id))
        entry_id = f"out:{message_id}"
        await frames_until(screen, lambda f: f.data.get("entry_id") == entry_id and f.data.get("entry", {}).get(
            "status") == "read", "the read tick")
        await asyncio.sleep(1.0)  # anything published twice would arrive by now
        about_reply = [f for f in screen.about(conversation["id"]) if f.data.get("entry_id") == entry_id]
        entry = await journey.timeline_entry(conversation["id"], lambda e: e.get("message_id") == message_id,
                                             what="the reply on the timeline")
        assert len(about_reply) == len(entry["statuses"]), [(f.event, f.data.get("changed_at")) for f in about_reply]
        assert about_reply[0].data["change"] == "message_appended"
        assert {f.data["change"] for f in about_reply[1:]} <= {"message_status", "assigned"}
        assert len({f.id for f in about_reply}) == len(about_reply)
        resume_from = screen.last_id()

    missed_wamid, _ = await journey.customer_writes("And can I change the address?")  # nobody is watching
    await journey.open_conversation_with(missed_wamid)
    async with watching(system, last_event_id=resume_from) as again:
        replayed = await frames_until(again, lambda f: f.data.get("entry_id") == f"in:{missed_wamid}",
                                      "the missed message after the reconnect")
        assert replayed[0].data["entry"]["text"] == "And can I change the address?"
        assert not any(f.event == "reset" for f in again.frames)

    async with watching(system, last_event_id=str(uuid.uuid4())) as lost:
        await frames_until(lost, lambda f: f.event == "reset", "a reset for an id the router does not have")


async def test_an_edit_a_deletion_and_a_reaction_reach_the_screen_with_the_changed_entry(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    first, _ = await journey.customer_writes("Pick-up at 5")
    conversation, _ = await journey.open_conversation_with(first)
    second, _ = await journey.customer_writes("Ignore this")
    await journey.open_conversation_with(second)
    async with watching(system) as screen:
        await frames_until(screen, lambda f: f.event == "counts", "the stream is connected")
        for change in ({"type": "edit", "edit": {"original_message_id": first, "message": {
                            "type": "text", "text": {"body": "Pick-up at 6"}}}},
                       {"type": "revoke", "revoke": {"original_message_id": second}},
                       {"type": "reaction", "reaction": {"message_id": first, "emoji": "\N{OK HAND SIGN}"}}):
            await journey.deliver(whatsapp_change(journey.phone, change, WHATSAPP.phone_number_id))
        def revisions() -> list[Frame]:
            return [f for f in screen.about(conversation["id"]) if f.event == "conversation.message_revised"]

        await frames_until(screen, lambda _: len(revisions()) >= 3, "three revisions pushed")
        by_comment = {f.data["comment"]: f.data for f in revisions()}
        assert set(by_comment) == {"edit", "delete", "reaction"}
        assert by_comment["edit"]["entry_id"] == f"in:{first}" and by_comment["edit"]["conversation_id"] == \
            conversation["id"]
        assert by_comment["edit"]["entry"]["text"] == "Pick-up at 6" and by_comment["edit"]["entry"]["edited"]
        assert by_comment["delete"]["entry"]["deleted"] is True
        assert by_comment["reaction"]["entry"]["reactions"]["customer"]["emoji"] == "\N{OK HAND SIGN}"
        assert "revision_event_ids" not in by_comment["edit"]["entry"]  # the bookkeeping stays in the router

