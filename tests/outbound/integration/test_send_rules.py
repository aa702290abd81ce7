"""More refusals and recovery on the real infrastructure: attachment format/size/expiry from media events,
the free entry point's pricing, reconciliation of `sending` at start, poison send commands."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import (
    TENANT,
    customer_message,
    manager,
    post_when_media_known,
    publisher,
    read_topic,
    status_of,
    window_open,
)

from parley_common.events.inbound import Referral
from parley_common.events.media import MediaExpired, MediaStored
from parley_common.settings import InfraSettings
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES, MEDIA_EVENTS, OUTBOUND_REQUESTS

MB = 1024 * 1024
pytestmark = pytest.mark.asyncio(loop_scope="module")


def stored(media_id: str, mime: str, size: int, expires_in: timedelta = timedelta(days=7)) -> MediaStored:
    now = datetime.now(UTC)
    return MediaStored(occurred_at=now, tenant_id=TENANT, correlation_id="c-m", channel_id="wa-main",
                       external_user_id="agent-upload", media_id=media_id, mime_type=mime, size_bytes=size,
                       sha256="00", expires_at=now + expires_in)


async def test_attachments_are_checked_against_the_channel_table(app: FastAPI, client: httpx.AsyncClient,
                                                                 fake_provider: FakeProvider) -> None:
    user = "447700900444"
    await publisher(app).publish(customer_message("wa-main", "whatsapp", user, timedelta(minutes=5)), INBOUND_MESSAGES)
    for event in (stored("m-photo", "image/jpeg", 2 * MB), stored("m-huge", "image/png", 6 * MB),
                  stored("m-gif", "image/gif", 1000), stored("m-old", "application/pdf", 1000)):
        await publisher(app).publish(event, MEDIA_EVENTS)
    await publisher(app).publish(MediaExpired(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c",
                                              channel_id="wa-main", external_user_id="x", media_id="m-old"),
                                 MEDIA_EVENTS)
    await window_open(client, "wa-main", user)

    async def send(media_id: str, **extra: Any) -> httpx.Response:
        body = {"channel_id": "wa-main", "recipient": {"external_user_id": user},
                "content": {"kind": "text", "text": "see attached", "media_id": media_id}, **extra}
        return await post_when_media_known(client, body)

    photo = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # the stored bytes, fetched inside the cluster
    fake_provider.media.store(TENANT, "m-photo", photo, "image/jpeg", "photo.jpg")
    accepted = await send("m-photo")
    assert accepted.status_code == 202, accepted.text
    await status_of(client, accepted.json()["message_id"], "sent")
    image = fake_provider.bodies_for(user)[-1]
    assert image["type"] == "image" and image["image"]["caption"] == "see attached"
    assert fake_provider.uploaded(image["image"]["id"]).data == photo  # uploaded, not a link to our media
    codes = {media_id: (await send(media_id)).json()["error"]["code"] for media_id in ("m-huge", "m-gif")}
    assert codes == {"m-huge": "attachment_not_accepted", "m-gif": "attachment_not_accepted"}
    expired = await client.post("/v1/messages", json={
        "channel_id": "wa-main", "recipient": {"external_user_id": user},
        "content": {"kind": "media", "media_id": "m-old"}})
    assert expired.json()["error"]["code"] == "media_expired"
    two = await send("m-photo", attachments=["m-gif"])
    assert two.json()["error"]["code"] == "too_many_attachments"


async def test_free_entry_point_makes_templates_free_but_not_the_window(app: FastAPI, client: httpx.AsyncClient,
                                                                       module_infra: InfraSettings) -> None:
    user = "447700900555"
    promo = {"name": "promo", "language": "en", "category": "marketing", "status": "approved", "body": "Deals!"}
    async with manager(app, module_infra) as boss:
        assert (await boss.put("/v1/templates/wa-main", json=promo)).status_code == 200
    referral = Referral(source_type="ad", source_id="ad-1", ctwa_clid="clid", free_entry_point=True)
    await publisher(app).publish(customer_message("wa-main", "whatsapp", user, timedelta(hours=23),
                                                  referral=referral), INBOUND_MESSAGES)
    await window_open(client, "wa-main", user)
    template = {"channel_id": "wa-main", "recipient": {"external_user_id": user},
                "content": {"kind": "template", "name": "promo", "language": "en"}}
    first = (await client.post("/v1/messages", json=template)).json()
    assert (first["pricing_category"], first["free"]) == ("marketing", True)  # opens the 72 h FEP window
    await status_of(client, first["message_id"], "sent")
    second = (await client.post("/v1/messages", json=template)).json()
    assert second["free"] is True


async def test_a_poison_send_command_is_dead_lettered(app: FastAPI, module_infra: InfraSettings) -> None:
    topic = OUTBOUND_REQUESTS.name(module_infra.namespace)
    await app.state.publisher._broker.publish(b'{"not": "a command"}', topic=topic, key=b"acme|tg-bot|x")
    letters = await read_topic(module_infra, DEAD_LETTERS, lambda seen: len(seen) >= 1,
                               where=lambda letter: letter.reason == "invalid_event")
    assert letters[0].reason == "invalid_event" and letters[0].service == "outbound"
    assert base64.b64decode(letters[0].original_value_base64) == b'{"not": "a command"}'


async def test_a_reply_right_after_an_accept_is_not_refused_as_the_other_agents_thread(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    """The router answers an agent's accept once its event is on the topic, and outbound's projection follows a
    moment later: the reply the agent sends at once waits for it instead of being refused as the thread of the
    agent it was offered to before."""
    from parley_common.events.conversations import AgentChanged, Assignee, ConversationChanged
    from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS

    user = "tg-accepted-1"  # offered to lee, who declined; the caller (agent.dana) accepts it and replies at once
    await publisher(app).publish(AgentChanged(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-a",
                                              login="agent.dana", teams=("support",)), AGENTS_EVENTS)
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=2)), INBOUND_MESSAGES)

    async def assigned_to(login: str) -> None:
        await publisher(app).publish(ConversationChanged(
            occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-t", channel_id="tg-bot",
            external_user_id=user, conversation_id="conv-accepted-1", change="assigned", status="assigned",
            assignee=Assignee(kind="agent", id=login), team_id="support", changed_at=datetime.now(UTC)),
            CONVERSATIONS_EVENTS)

    await assigned_to("agent.lee")
    await window_open(client, "tg-bot", user)
    body = {"channel_id": "tg-bot", "recipient": {"external_user_id": user}, "content": {"kind": "text", "text": "x"}}
    for _ in range(100):  # until lee's assignment is projected: then refused, after the wait
        refused = await client.post("/v1/messages", json=body)
        if refused.status_code == 422:
            break
        await asyncio.sleep(0.1)
    assert refused.json()["error"]["code"] == "thread_held_by_another_agent"

    replying = asyncio.create_task(client.post("/v1/messages", json=body))
    await asyncio.sleep(0.3)  # the reply is in flight when dana's accept reaches outbound
    await assigned_to("agent.dana")
    reply = await replying
    assert reply.status_code == 202, reply.text


async def test_thread_held_by_another_agent_refuses_humans_but_not_email(app: FastAPI, client: httpx.AsyncClient
                                                                         ) -> None:
    from parley_common.events.conversations import AgentChanged, Assignee, ConversationChanged
    from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS

    user = "tg-held-1"  # held by a teammate: the caller (agent.dana) sees the conversation but may not write
    await publisher(app).publish(AgentChanged(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-a",
                                              login="agent.dana", teams=("support",)), AGENTS_EVENTS)
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=2)), INBOUND_MESSAGES)
    await publisher(app).publish(ConversationChanged(
        occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-t", channel_id="tg-bot",
        external_user_id=user, conversation_id="conv-1", change="assigned", status="assigned",
        assignee=Assignee(kind="agent", id="agent.lee"), team_id="support", changed_at=datetime.now(UTC)),
        CONVERSATIONS_EVENTS)
    await window_open(client, "tg-bot", user)
    body = {"channel_id": "tg-bot", "recipient": {"external_user_id": user}, "content": {"kind": "text", "text": "x"}}
    for _ in range(100):
        response = await client.post("/v1/messages", json=body)
        if response.status_code == 422:
            break
        await asyncio.sleep(0.1)
    assert response.json()["error"]["code"] == "thread_held_by_another_agent"
