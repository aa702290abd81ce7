"""The outbound service end to end on the real broker, database and cache, with the fake providers:
HTTP and topic sends, window and block projections, statuses, idempotency, after-send, crash recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import (
    TENANT,
    customer_message,
    eventually,
    manager,
    publisher,
    read_topic,
    status_of,
    window_open,
)

from parley_common.events.contacts import ContactBlocked, Identity
from parley_common.events.inbound import DeliveryStatus, DeliveryStatusReported, SystemPart
from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_common.settings import InfraSettings
from parley_common.topics import (
    CONTACTS_EVENTS,
    CONVERSATIONS_COMMANDS,
    INBOUND_MESSAGES,
    INBOUND_STATUSES,
    OUTBOUND_MESSAGES,
    OUTBOUND_REQUESTS,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_send_inside_window_then_statuses_and_after_send(app: FastAPI, client: httpx.AsyncClient,
                                                               fake_provider: FakeProvider,
                                                               module_infra: InfraSettings) -> None:
    user = "447700900111"
    await publisher(app).publish(customer_message("wa-main", "whatsapp", user, timedelta(hours=1)), INBOUND_MESSAGES)
    await window_open(client, "wa-main", user)
    window = (await client.get(f"/v1/windows/wa-main/{user}")).json()
    assert window["open"] and 82_000 < window["remaining_seconds"] <= 82_800

    response = await client.post("/v1/messages", json={
        "channel_id": "wa-main", "recipient": {"external_user_id": user},
        "content": {"kind": "text", "text": "Your parcel ships today"},
        "after_send": {"action": "assign_to_me"}})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["pricing_category"] == "service" and accepted["free"]
    sent = await status_of(client, accepted["message_id"], "sent")
    assert sent["sender"]["login"] == "agent.dana"
    assert fake_provider.bodies_for(user)[-1]["text"]["body"] == "Your parcel ships today"

    def status(value: DeliveryStatus) -> DeliveryStatusReported:
        now = datetime.now(UTC)
        return DeliveryStatusReported(occurred_at=now, tenant_id=TENANT, correlation_id="c-st", channel_id="wa-main",
                                      external_user_id=user, channel_type="whatsapp",
                                      provider_message_id=sent["provider_message_id"], status=value,
                                      provider_timestamp=now)
    await publisher(app).publish(status(DeliveryStatus.READ), INBOUND_STATUSES)
    await publisher(app).publish(status(DeliveryStatus.DELIVERED), INBOUND_STATUSES)  # late: changes nothing
    await status_of(client, accepted["message_id"], "read")

    updates = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 3,
                               where=lambda event: event.message_id == accepted["message_id"])
    assert [event.status.value for event in updates] == ["queued", "sent", "read"]
    assert updates[1].sender.login == "agent.dana" and updates[1].pricing_category == "service"
    actions = await read_topic(module_infra, CONVERSATIONS_COMMANDS, lambda seen: len(seen) >= 1,
                               where=lambda action: action.related_message_id == accepted["message_id"])
    assert (actions[0].action, actions[0].actor, actions[0].related_message_id) == (
        "assign_to_me", "agent.dana", accepted["message_id"])
    await asyncio.sleep(0.3)
    assert (await client.get(f"/v1/messages/{accepted['message_id']}")).json()["status"] == "read"


WELCOME = {"name": "welcome", "language": "en_US", "category": "utility", "status": "approved",
           "body": "Hello {{1}}, this is {{2}}.",
           "variables": [{"name": "2", "type": "dropdown", "options": ["Acme", "Acme Support"]}]}


async def test_whatsapp_write_first_needs_an_approved_template(app: FastAPI, client: httpx.AsyncClient,
                                                               fake_provider: FakeProvider,
                                                               module_infra: InfraSettings) -> None:
    first = {"channel_id": "wa-main", "recipient": {"phone": "+44 7700 900222"},
             "content": {"kind": "text", "text": "hi"}}
    none_yet = await client.post("/v1/messages", json=first)
    assert (none_yet.status_code, none_yet.json()["error"]["code"]) == (422, "no_approved_template")
    assert (await client.put("/v1/templates/wa-main", json=WELCOME)).status_code == 403  # agents may not
    async with manager(app, module_infra) as boss:
        assert (await boss.put("/v1/templates/wa-main", json=WELCOME)).status_code == 200
    free_form = await client.post("/v1/messages", json=first)
    assert free_form.json()["error"]["code"] == "template_required"
    short = await client.post("/v1/messages", json={**first, "recipient": {"phone": "12345"}})
    assert short.json()["error"]["code"] == "invalid_phone_number"
    template = {**first, "content": {"kind": "template", "name": "welcome", "language": "en_US",
                                     "variables": {"1": "Dana", "2": "Nobody"}}}
    invalid = await client.post("/v1/messages", json=template)
    assert invalid.json()["error"]["code"] == "template_variable_invalid"
    template["content"]["variables"]["2"] = "Acme"  # type: ignore[index]
    accepted = await client.post("/v1/messages", json=template)
    assert accepted.status_code == 202
    assert (accepted.json()["pricing_category"], accepted.json()["free"]) == ("utility", False)
    await status_of(client, accepted.json()["message_id"], "sent")
    sent = fake_provider.bodies_for("447700900222")
    assert [body["type"] for body in sent] == ["template"]
    assert sent[0]["template"]["components"][0]["parameters"] == [{"type": "text", "text": "Dana"},
                                                                  {"type": "text", "text": "Acme"}]
    message_id = accepted.json()["message_id"]

    def sent_seen(seen: list[Any]) -> bool:
        return any(e.message_id == message_id and e.status.value == "sent" for e in seen)
    updates = await read_topic(module_infra, OUTBOUND_MESSAGES, sent_seen,
                               where=lambda event: event.external_user_id == "447700900222")
    refusals = [e.reason for e in updates if e.status.value == "refused"]
    assert refusals == ["no_approved_template", "template_required", "template_variable_invalid"]
    assert updates[-1].rendered_text == "Hello Dana, this is Acme."


async def test_templates_sync_from_whatsapp(app: FastAPI, client: httpx.AsyncClient,
                                            module_infra: InfraSettings) -> None:
    async with manager(app, module_infra) as boss:
        synced = await boss.post("/v1/templates/wa-main/sync")
        assert synced.json() == {"synced": 3, "skipped": 0}
        listed = (await boss.get("/v1/templates", params={"channel_id": "wa-main"})).json()
        one = (await boss.get("/v1/templates/wa-main/order_update/en_US")).json()
    synced_names = {(t["name"], t["status"]) for t in listed if t.get("provider_id")}
    assert synced_names == {("order_update", "approved"), ("winter_promo", "rejected"), ("spring_sale", "approved")}
    assert one["header"] == {"format": "text", "text": "Order news"} and one["category"] == "utility"
    rejected = await client.post("/v1/messages", json={
        "channel_id": "wa-main", "recipient": {"phone": "447700900333"},
        "content": {"kind": "template", "name": "winter_promo", "language": "en_US"}})
    assert rejected.json()["error"]["code"] == "template_not_approved"


async def test_same_idempotency_key_sends_once_under_concurrency(app: FastAPI, client: httpx.AsyncClient,
                                                                 fake_provider: FakeProvider) -> None:
    user = "tg-idem-1"
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(days=3)), INBOUND_MESSAGES)
    await window_open(client, "tg-bot", user)
    body = {"channel_id": "tg-bot", "recipient": {"external_user_id": user},
            "content": {"kind": "text", "text": "once"}}
    responses = await asyncio.gather(*(client.post("/v1/messages", json=body, headers={"Idempotency-Key": "k-1"})
                                       for _ in range(6)))
    ids = {response.json()["message_id"] for response in responses}
    assert len(ids) == 1 and all(response.status_code == 202 for response in responses)
    await status_of(client, ids.pop(), "sent")
    await asyncio.sleep(0.3)
    assert len(fake_provider.bodies_for(user)) == 1


async def test_blocked_identity_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = "tg-blocked-1"
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=5)), INBOUND_MESSAGES)
    await publisher(app).publish(ContactBlocked(
        occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-b", contact_id="ct-1",
        identity=Identity(channel_id="tg-bot", external_user_id=user)), CONTACTS_EVENTS)

    async def blocked() -> bool:
        return bool((await client.get(f"/v1/windows/tg-bot/{user}")).json()["blocked"])
    await eventually(blocked)
    response = await client.post("/v1/messages", json={
        "channel_id": "tg-bot", "recipient": {"external_user_id": user}, "content": {"kind": "text", "text": "x"}})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "customer_blocked")


async def test_topic_commands_follow_the_same_policy(app: FastAPI, client: httpx.AsyncClient,
                                                     fake_provider: FakeProvider, module_infra: InfraSettings) -> None:
    user = "psid-topic-1"
    await publisher(app).publish(customer_message("fb-page", "messenger", user, timedelta(days=2)), INBOUND_MESSAGES)
    await window_open(client, "fb-page", user)

    def command(message_id: str, sender: Sender) -> SendMessage:
        return SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-cmd",
                           channel_id="fb-page", external_user_id=user, message_id=message_id,
                           channel_type="messenger", sender=sender, content=OutboundText(text="from the bus"))
    await publisher(app).publish(command("bot-msg", Sender(kind="bot", bot_id="faq-bot")), OUTBOUND_REQUESTS)
    await publisher(app).publish(command("human-msg", Sender(kind="human", login="agent.lee")), OUTBOUND_REQUESTS)
    updates = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 3,
                               where=lambda event: event.message_id in ("bot-msg", "human-msg"))
    by_id = {(event.message_id, event.status.value): event for event in updates}
    assert by_id[("bot-msg", "refused")].reason == "automation_window_closed"
    assert ("human-msg", "queued") in by_id
    await status_of(client, "human-msg", "sent")
    bodies = fake_provider.bodies_for(user)
    assert len(bodies) == 1 and bodies[0]["tag"] == "HUMAN_AGENT"


async def test_a_crash_between_provider_call_and_record_never_sends_twice(
        app: FastAPI, client: httpx.AsyncClient, fake_provider: FakeProvider) -> None:
    sender = app.state.sender
    user = "tg-crash-1"
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=1)), INBOUND_MESSAGES)
    await window_open(client, "tg-bot", user)
    command = SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-crash",
                          channel_id="tg-bot", external_user_id=user, message_id="crash-msg", channel_type="telegram",
                          sender=Sender(kind="human", login="agent.dana"), content=OutboundText(text="once"))
    await sender.accept(command)
    original = sender.delivery.send

    async def killed_after_call(*args: Any) -> Any:
        await original(*args)
        raise asyncio.CancelledError  # the process dies before recording the provider's answer
    sender.delivery.send = killed_after_call
    with pytest.raises(asyncio.CancelledError):
        await sender.deliver(command, await sender.messages.get(TENANT, "crash-msg"))
    sender.delivery.send = original
    assert (await client.get("/v1/messages/crash-msg")).json()["status"] == "sending"
    await publisher(app).publish(command, OUTBOUND_REQUESTS)  # redelivered after the restart
    failed = await status_of(client, "crash-msg", "failed")
    assert failed["reason"] == "send_outcome_unknown"
    assert len(fake_provider.bodies_for(user)) == 1


async def test_email_is_validated_and_sent_closed(client: httpx.AsyncClient, smtp_server: tuple[Any, int],
                                                  module_infra: InfraSettings) -> None:
    bad = await client.post("/v1/messages", json={
        "channel_id": "mail", "recipient": {"external_user_id": "dana@example.com"},
        "content": {"kind": "text", "text": "x"}, "email": {"subject": "s", "bcc": ["not-an@address"]}})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_email_address")
    response = await client.post("/v1/messages", json={
        "channel_id": "mail", "recipient": {"external_user_id": "dana@example.com"},
        "content": {"kind": "text", "text": "Invoice attached"}, "after_send": {"action": "close"},
        "email": {"subject": "Invoice", "cc": ["boss@example.co.uk"], "bcc": ["audit@example.com"]}})
    assert response.status_code == 202, response.text
    await status_of(client, response.json()["message_id"], "sent")
    mail, recipients = smtp_server[0].messages[-1]
    assert mail["Subject"] == "Invoice" and "audit@example.com" in recipients


async def test_viber_subscribers_only(app: FastAPI, client: httpx.AsyncClient) -> None:
    user = "viber-sub-1="
    await publisher(app).publish(customer_message("viber-bot", "viber", user, timedelta(days=9)), INBOUND_MESSAGES)
    await window_open(client, "viber-bot", user)
    body = {"channel_id": "viber-bot", "recipient": {"external_user_id": user},
            "content": {"kind": "text", "text": "hi"}}
    assert (await client.post("/v1/messages", json=body)).status_code == 202
    await publisher(app).publish(customer_message("viber-bot", "viber", user, timedelta(0),
                                                  parts=(SystemPart(system_kind="unsubscribed"),)), INBOUND_MESSAGES)

    async def unsubscribed() -> bool:
        return (await client.get(f"/v1/windows/viber-bot/{user}")).json()["subscribed"] is False
    await eventually(unsubscribed)
    refused = await client.post("/v1/messages", json=body)
    assert refused.json()["error"]["code"] == "not_subscribed"


async def test_api_requires_a_token(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound") as anonymous:
        response = await anonymous.post("/v1/messages", json={})
    assert response.status_code == 401
