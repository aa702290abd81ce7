"""One visibility rule in every service, and channels that belong to their tenant, through all five services as
real processes: an agent outside the conversation's team gets 404 for the conversation and for everything behind
it (contact card, window, outbound messages, media, sending); an agent may still write first to a customer nobody
has talked to, and that conversation becomes theirs; a send command naming another tenant's channel is
dead-lettered and opens nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from e2e_customer import AGENT, SUPERVISOR, TEAM, Journey, linked_media, media_records, send_image
from e2e_journey import NotYet, eventually, new_customer_phone, png_bytes
from e2e_system import JWT_SECRET, WHATSAPP, System

from parley_common.auth import issue_token
from parley_common.cloudevents import headers_for
from parley_common.events.common import ChannelType
from parley_common.events.envelope import Envelope
from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender, SendMessage
from parley_common.topics import DEAD_LETTERS, OUTBOUND_MESSAGES, OUTBOUND_REQUESTS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]

OUTSIDER = "bruno"  # an agent of another team
INTRUDER = "intruder"  # another tenant
PNG = png_bytes(2, 2)


async def put_agent(system: System, http: httpx.AsyncClient, login: str, teams: list[str]) -> None:
    response = await http.put(f"{system.url('router')}/v1/agents/{login}", json={"teams": teams},
                              headers=system.auth(SUPERVISOR, "manager"))
    assert response.status_code == 200, response.text


async def status(system: System, http: httpx.AsyncClient, login: str, role: str, method: str, service: str,
                 path: str, **kwargs: Any) -> int:
    response = await http.request(method, f"{system.url(service)}{path}", headers=system.auth(login, role), **kwargs)
    return response.status_code


async def becomes(system: System, http: httpx.AsyncClient, service: str, path: str, wanted: int) -> None:
    """Services learn whose a customer is from topics: wait until the outsider's read answers `wanted`."""
    async def probe() -> bool:
        got = await status(system, http, OUTSIDER, "agent", "GET", service, path)
        if got != wanted:
            raise NotYet(f"{service} {path}: {got}")
        return True

    await eventually(probe, within=30.0, what=f"{service} {path} → {wanted} for {OUTSIDER}")


async def test_an_agent_of_another_team_gets_404_for_everything_behind_the_conversation(
        system: System, http: httpx.AsyncClient) -> None:
    await put_agent(system, http, OUTSIDER, ["sales"])
    journey = Journey(system, http)
    wamid, _ = await send_image(journey, PNG, "my invoice")
    conversation, _ = await journey.open_conversation_with(wamid)
    assert conversation["team_id"] == TEAM
    entry = await linked_media(journey, conversation["id"], wamid)
    [media] = media_records(entry["media"])
    contact = await journey.one_contact()
    await journey.window_seen()
    reply = await journey.agent_replies("We are on it.")  # alice, of the conversation's team
    assert reply.status_code == 202, reply.text
    message_id = reply.json()["message_id"]
    await journey.outbound_state(message_id, "sent")

    behind = {"router": f"/v1/conversations/{conversation['id']}", "contacts": f"/v1/contacts/{contact['id']}",
              "outbound": f"/v1/windows/{WHATSAPP.id}/{journey.external_user_id}",
              "media": f"/v1/media/{media['media_id']}"}
    for service, path in behind.items():
        await becomes(system, http, service, path, 404)
    assert await status(system, http, OUTSIDER, "agent", "GET", "outbound", f"/v1/messages/{message_id}") == 404
    sends_before = len(system.provider.sends_to(journey.phone))
    body = {"channel_id": WHATSAPP.id, "recipient": {"external_user_id": journey.external_user_id},
            "content": {"kind": "text", "text": "not my customer"}}
    assert await status(system, http, OUTSIDER, "agent", "POST", "outbound", "/v1/messages", json=body) == 404
    search = await http.get(f"{system.url('contacts')}/v1/contacts/search", params=journey.contact_search(),
                            headers=system.auth(OUTSIDER, "agent"))
    assert search.json()["items"] == []

    for service, path in behind.items():  # the team's agent and a manager see all of it
        assert await status(system, http, AGENT, "agent", "GET", service, path) == 200, (service, path)
        assert await status(system, http, SUPERVISOR, "manager", "GET", service, path) == 200, (service, path)
    await asyncio.sleep(1.0)
    assert len(system.provider.sends_to(journey.phone)) == sends_before  # the refused send reached no provider


async def test_an_agent_may_write_first_to_a_new_customer_and_the_conversation_becomes_theirs(
        system: System, http: httpx.AsyncClient) -> None:
    await put_agent(system, http, OUTSIDER, ["sales"])
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text
    phone = new_customer_phone()
    template = {"channel_id": WHATSAPP.id, "recipient": {"phone": f"+{phone}"},
                "content": {"kind": "template", "name": "order_update", "language": "en_US",
                            "variables": {"1": "Ada", "2": "3 GBP"}}}
    accepted = await http.post(f"{system.url('outbound')}/v1/messages", json=template,
                               headers=system.auth(OUTSIDER, "agent"))
    assert accepted.status_code == 202, accepted.text

    async def theirs() -> dict[str, Any]:
        response = await http.get(f"{system.url('router')}/v1/conversations", params={"channel_id": WHATSAPP.id},
                                  headers=system.auth(OUTSIDER, "agent"))
        found = [c for c in response.json()["items"] if c["external_user_id"] == phone]
        if not found or found[0]["assignee"] is None:
            raise NotYet(str(found))
        return found[0]

    conversation = await eventually(theirs, within=30.0, what="the new conversation in the writer's inbox")
    assert conversation["assignee"] == {"kind": "agent", "id": OUTSIDER}
    await becomes(system, http, "outbound", f"/v1/windows/{WHATSAPP.id}/{phone}", 200)
    # … and it is not the other team's: alice (support) may not open it once the services know whose it is
    window = f"/v1/windows/{WHATSAPP.id}/{phone}"

    async def hidden_from_alice() -> bool:
        got = await status(system, http, AGENT, "agent", "GET", "outbound", window)
        if got != 404:
            raise NotYet(str(got))
        return True

    await eventually(hidden_from_alice, within=30.0, what="the outsider's new conversation hidden from alice")


async def test_records_naming_another_tenants_channel_are_dead_lettered_and_open_nothing(
        system: System, http: httpx.AsyncClient, infra_endpoints: dict[str, str]) -> None:
    """A send command (as a bot or another system may publish) and an outbound update (as if outbound had passed
    one on), both with tenant "intruder" and acme's channel: outbound and the router dead-letter them."""
    customer = new_customer_phone()
    common: dict[str, Any] = {"occurred_at": datetime.now(UTC), "tenant_id": INTRUDER, "channel_id": WHATSAPP.id,
                              "external_user_id": customer, "channel_type": ChannelType.WHATSAPP,
                              "sender": Sender(kind="human", login="mallory"),
                              "content": OutboundText(text="hello from another tenant")}
    command = SendMessage(**common, correlation_id=f"forged-{uuid.uuid4().hex[:8]}", message_id=uuid.uuid4().hex)
    update = OutboundMessageUpdated(**common, correlation_id=f"forged-{uuid.uuid4().hex[:8]}",
                                    message_id=uuid.uuid4().hex, status="sent", status_at=datetime.now(UTC))
    bootstrap = infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"]
    await publish_raw(bootstrap, OUTBOUND_REQUESTS.name(system.namespace), command)
    await publish_raw(bootstrap, OUTBOUND_MESSAGES.name(system.namespace), update)

    letters = await dead_letters(bootstrap, system.namespace, {command.correlation_id, update.correlation_id})
    assert {(letter.service, letter.reason, letter.tenant_id) for letter in letters} == {
        ("outbound", "channel_of_another_tenant", INTRUDER), ("router", "channel_of_another_tenant", INTRUDER)}
    assert system.provider.sends_to(customer) == []
    intruder = {"Authorization": f"Bearer {issue_token(JWT_SECRET, INTRUDER, 'boss', ['manager'])}"}
    response = await http.get(f"{system.url('router')}/v1/conversations", headers=intruder)
    assert response.status_code == 200 and response.json()["items"] == []  # the router opened nothing


async def publish_raw(bootstrap: str, topic: str, event: Envelope) -> None:
    """Straight onto the topic, as any system on the bus can (no service's API in between)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.partition_key(),
                                     headers=[(key, value.encode()) for key, value in headers_for(event).items()])
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, namespace: str, correlation_ids: set[str], within: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(DEAD_LETTERS.name(namespace), bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=f"reader-{uuid.uuid4().hex}")
    await consumer.start()
    found: list[Any] = []
    deadline = time.monotonic() + within
    try:
        while len(found) < len(correlation_ids):
            assert time.monotonic() < deadline, f"dead letters within {within}s: {found}"
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                letter = DEAD_LETTERS.parse(record.value)
                if letter.correlation_id in correlation_ids:
                    found.append(letter)
    finally:
        await consumer.stop()
    return found
