"""The agents' side of a shift, through the services' public HTTP APIs only: a manager sets up a team and its
routing, agents go online, accept or decline offers, upload files and pick templates; waits poll with a
deadline (e2e_journey.eventually)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from e2e_customer import Journey
from e2e_journey import NotYet, eventually
from e2e_system import System

from parley_common.tasks import running
from parley_common.topics import CONVERSATIONS_EVENTS

MANAGER = "sam"
HEARTBEAT_EVERY = 15.0  # seconds; the router's presence expires after 60 without one


class Desk:
    def __init__(self, system: System, client: httpx.AsyncClient) -> None:
        self.system = system
        self.client = client
        self.presences: dict[str, str] = {}  # login → the presence their console last sent

    async def call(self, method: str, service: str, path: str, login: str, role: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, f"{self.system.url(service)}{path}",
                                         headers=self.system.auth(login, role), **kwargs)

    async def ok(self, method: str, service: str, path: str, login: str = MANAGER, role: str = "manager",
                 **kwargs: Any) -> Any:
        response = await self.call(method, service, path, login, role, **kwargs)
        assert response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    async def team(self, team_id: str, agents: list[str], offer_timeout_seconds: int = 300) -> None:
        """A team, its agents and one rule routing every conversation to it (as a manager sets up a desk)."""
        await self.ok("PUT", "router", f"/v1/teams/{team_id}",
                      json={"strategy": "round_robin", "offer_timeout_seconds": offer_timeout_seconds})
        for login in agents:
            await self.ok("PUT", "router", f"/v1/agents/{login}", json={"teams": [team_id]})
        await self.ok("PUT", "router", "/v1/routing",
                      json={"rules": [{"id": "everything", "target_kind": "team", "target_id": team_id}]})

    async def presence(self, login: str, presence: str) -> dict[str, Any]:
        self.presences[login] = presence
        answer: dict[str, Any] = await self.ok("POST", "router", "/v1/agents/me/heartbeat", login, "agent",
                                               json={"presence": presence})
        return answer

    @asynccontextmanager
    async def heartbeating(self, every: float = HEARTBEAT_EVERY) -> AsyncIterator[None]:
        """Each agent's console repeats their last presence, so nobody expires offline during a long walk."""
        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                for login, presence in list(self.presences.items()):
                    await self.presence(login, presence)

        async with running(beat()):
            yield

    async def act(self, login: str, conversation_id: str, action: str, **body: Any) -> httpx.Response:
        return await self.call("POST", "router", f"/v1/conversations/{conversation_id}/{action}", login, "agent",
                               json=body or None)

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.ok("GET", "router", f"/v1/conversations/{conversation_id}")
        return found

    async def offered(self, conversation_id: str, not_to: str | None = None, within: float = 30.0) -> str:
        """Wait until the conversation is offered to an agent (other than `not_to`); answers their login."""
        async def probe() -> str:
            conv = await self.conversation(conversation_id)
            assignee = conv.get("assignee") or {}
            if conv["status"] != "assigned" or assignee.get("kind") != "agent" or assignee.get("id") == not_to \
                    or not conv.get("offer_expires_at"):
                raise NotYet(str(conv))
            return str(assignee["id"])

        return await eventually(probe, within=within, what=f"an offer of {conversation_id}")

    async def upload(self, login: str, channel_id: str, name: str, data: bytes, mime: str) -> dict[str, Any]:
        response = await self.call("POST", "media", "/v1/media", login, "agent", params={"channel_id": channel_id},
                                   files={"file": (name, data, mime)})
        assert response.status_code == 201, response.text
        uploaded: dict[str, Any] = response.json()
        return uploaded


async def published_changes(bootstrap: str, namespace: str, conversation_id: str, until: str,
                            within: float = 30.0) -> list[dict[str, Any]]:
    """The router's `ConversationChanged` events of one conversation, read from its topic in order, up to and
    including the first whose `change` is `until` — each event once, as a subscriber that de-duplicates on
    `event_id` sees them (`opened` is published again, with its id, when its message is handled again)."""
    consumer = AIOKafkaConsumer(CONVERSATIONS_EVENTS.name(namespace), bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=f"e2e-reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        async def collect() -> None:
            while not found or found[-1]["change"] != until:
                record = await consumer.getone()
                event = json.loads(record.value)
                if event.get("conversation_id") == conversation_id and event["event_id"] not in seen:
                    seen.add(event["event_id"])
                    found.append(event)

        await asyncio.wait_for(collect(), within)
    except TimeoutError:
        raise AssertionError(f"no {until!r} of {conversation_id} within {within}s; saw "
                             f"{[event['change'] for event in found]}") from None
    finally:
        await consumer.stop()
    return found


async def send(desk: Desk, login: str, journey: Journey, content: dict[str, Any]) -> str:
    """`login` sends `content` to the journey's customer; answers the message id (202 expected)."""
    accepted = await desk.ok("POST", "outbound", "/v1/messages", login, "agent", json={
        "channel_id": journey.channel_id, "recipient": {"external_user_id": journey.external_user_id},
        "content": content})
    return str(accepted["message_id"])
