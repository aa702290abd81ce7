"""Saved replies on the real broker, database and cache: CRUD with roles and tenant scope, the custom-field
projection from contacts events, and rendered sends over HTTP and the requests topic reaching the fake provider
through the normal window policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT, customer_message, eventually, manager, publisher, status_of, window_open

from parley_common.auth import issue_token
from parley_common.events.contacts import ContactCreated, ContactsMerged, ContactUpdated, Identity
from parley_common.events.outbound import SavedReplyContent, Sender, SendMessage
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES, OUTBOUND_REQUESTS

pytestmark = pytest.mark.asyncio(loop_scope="module")


def contact_event(kind: type, contact_id: str, **fields: object) -> object:
    return kind(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-contacts", contact_id=contact_id,
                **fields)


async def fields_become(app: FastAPI, key: ConversationKey, wanted: dict[str, str]) -> None:
    """Wait for the contacts projection (its partitions are consumed independently of each other)."""
    async def projected() -> bool:
        return await app.state.sender.contact_fields.fields_of(key) == wanted  # type: ignore[no-any-return]
    await eventually(projected)


async def test_saved_reply_crud_roles_and_tenant_scope(app: FastAPI, client: httpx.AsyncClient,
                                                      module_infra: InfraSettings) -> None:
    async with manager(app, module_infra) as boss:
        created = await boss.post("/v1/saved-replies", json={"name": "greeting", "text": "Hello {{first_name}}",
                                                               "channel_types": ["whatsapp"]})
        assert created.status_code == 201, created.text
        reply = created.json()
        assert reply["name"] == "greeting" and reply["channel_types"] == ["whatsapp"] and reply["updated_by"] == "boss"
        taken = await boss.post("/v1/saved-replies", json={"name": "greeting", "text": "again"})
        assert taken.status_code == 409 and taken.json()["error"]["code"] == "saved_reply_name_taken"
        invalid = await boss.post("/v1/saved-replies", json={"name": "x", "text": ""})
        assert invalid.status_code == 422
        other = (await boss.post("/v1/saved-replies", json={"name": "bye", "text": "Bye"})).json()
        renamed = await boss.put(f"/v1/saved-replies/{other['id']}", json={"name": "greeting", "text": "Bye"})
        assert renamed.status_code == 409
        changed = await boss.put(f"/v1/saved-replies/{other['id']}", json={"name": "farewell", "text": "Bye!"})
        assert changed.status_code == 200 and changed.json()["text"] == "Bye!"

    assert (await client.post("/v1/saved-replies", json={"name": "n", "text": "t"})).status_code == 403
    assert (await client.delete(f"/v1/saved-replies/{other['id']}")).status_code == 403
    names = [item["name"] for item in (await client.get("/v1/saved-replies")).json()]
    assert names == ["farewell", "greeting"]
    on_telegram = (await client.get("/v1/saved-replies", params={"channel_type": "telegram"})).json()
    assert [item["name"] for item in on_telegram] == ["farewell"]  # greeting is for WhatsApp only
    assert (await client.get(f"/v1/saved-replies/{reply['id']}")).json()["text"] == "Hello {{first_name}}"

    stranger = issue_token(module_infra.jwt_secret.get_secret_value(), "globex", "eve", ["owner"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                                 headers={"Authorization": f"Bearer {stranger}"}) as foreign:
        assert (await foreign.get(f"/v1/saved-replies/{reply['id']}")).status_code == 404
        assert (await foreign.get("/v1/saved-replies")).json() == []
        assert (await foreign.delete(f"/v1/saved-replies/{reply['id']}")).status_code == 404

    async with manager(app, module_infra) as boss:
        assert (await boss.delete(f"/v1/saved-replies/{other['id']}")).status_code == 204
        gone = await boss.get(f"/v1/saved-replies/{other['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "saved_reply_not_found"


async def test_saved_reply_renders_custom_fields_and_obeys_the_window(app: FastAPI, client: httpx.AsyncClient,
                                                                      fake_provider: FakeProvider,
                                                                      module_infra: InfraSettings) -> None:
    user, stranger = "447700900777", "447700900778"
    async with manager(app, module_infra) as boss:
        reply = (await boss.post("/v1/saved-replies", json={
            "name": "tier", "text": "Your tier is {{membership}}, {{first_name}}."})).json()
    identity = Identity(channel_id="wa-main", external_user_id=user)
    for event in (contact_event(ContactCreated, "c-old", identities=(identity,)),
                  contact_event(ContactUpdated, "c-old", changed={"custom_fields.first_name": "Ann"})):
        await publisher(app).publish(event, CONTACTS_EVENTS)
    await fields_become(app, ConversationKey(TENANT, "wa-main", user), {"first_name": "Ann"})
    for event in (contact_event(ContactCreated, "c-777"),
                  contact_event(ContactUpdated, "c-777", changed={"custom_fields.membership": "diamond"}),
                  contact_event(ContactsMerged, "c-777", merged_contact_id="c-old", identities=(identity,))):
        await publisher(app).publish(event, CONTACTS_EVENTS)
    for customer in (user, stranger):
        await publisher(app).publish(customer_message("wa-main", "whatsapp", customer, timedelta(hours=2)),
                                     INBOUND_MESSAGES)
        await window_open(client, "wa-main", customer)
    body = {"channel_id": "wa-main", "content": {"kind": "saved_reply", "saved_reply_id": reply["id"]}}

    async def send_when_projected() -> httpx.Response:
        for _ in range(200):  # the contacts projection may still be catching up
            response = await client.post("/v1/messages", json={**body, "recipient": {"external_user_id": user}})
            if response.status_code == 202 or response.json()["error"]["code"] != "saved_reply_field_missing":
                return response
            await asyncio.sleep(0.05)
        return response

    accepted = await send_when_projected()
    assert accepted.status_code == 202, accepted.text
    await status_of(client, accepted.json()["message_id"], "sent")
    assert fake_provider.bodies_for(user)[-1]["text"]["body"] == "Your tier is diamond, Ann."

    missing = await client.post("/v1/messages", json={**body, "recipient": {"external_user_id": stranger}})
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "saved_reply_field_missing"
    assert "membership, first_name" in missing.json()["error"]["message"]

    await publisher(app).publish(customer_message("wa-main", "whatsapp", "447700900779", timedelta(hours=30)),
                                 INBOUND_MESSAGES)
    await window_open(client, "wa-main", "447700900779")
    async with manager(app, module_infra) as boss:
        plain = (await boss.post("/v1/saved-replies", json={"name": "plain", "text": "We are on it"})).json()
    closed = await client.post("/v1/messages", json={
        "channel_id": "wa-main", "recipient": {"external_user_id": "447700900779"},
        "content": {"kind": "saved_reply", "saved_reply_id": plain["id"]}})
    assert closed.status_code == 422  # a saved reply is free-form: the 24 h window applies
    assert closed.json()["error"]["code"] in ("template_required", "no_approved_template")


async def test_saved_reply_command_on_the_requests_topic(app: FastAPI, client: httpx.AsyncClient,
                                                         fake_provider: FakeProvider,
                                                         module_infra: InfraSettings) -> None:
    user = "70777"
    async with manager(app, module_infra) as boss:
        reply = (await boss.post("/v1/saved-replies", json={"name": "bot", "text": "Code {{code}}",
                                                             "channel_types": ["telegram"]})).json()
    await publisher(app).publish(contact_event(ContactCreated, "c-tg", identities=(
        Identity(channel_id="tg-bot", external_user_id=user),)), CONTACTS_EVENTS)
    await publisher(app).publish(contact_event(ContactUpdated, "c-tg", changed={"custom_fields.code": 4711}),
                                 CONTACTS_EVENTS)
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=1)), INBOUND_MESSAGES)
    await window_open(client, "tg-bot", user)  # a Telegram bot never writes first
    await fields_become(app, ConversationKey(TENANT, "tg-bot", user), {"code": "4711"})
    command = SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-cmd",
                          channel_id="tg-bot", external_user_id=user, message_id="saved-from-bus",
                          channel_type="telegram", sender=Sender(kind="bot", bot_id="faq-bot"),
                          content=SavedReplyContent(saved_reply_id=reply["id"]))
    await publisher(app).publish(command, OUTBOUND_REQUESTS)
    await publisher(app).publish(command, OUTBOUND_REQUESTS)  # a redelivery sends nothing twice
    await status_of(client, "saved-from-bus", "sent")
    await asyncio.sleep(0.3)
    assert [body["text"] for body in fake_provider.bodies_for(user)] == ["Code 4711"]


async def test_contact_fields_projection_is_idempotent(app: FastAPI) -> None:
    store = app.state.sender.contact_fields
    key = ConversationKey(TENANT, "wa-main", "447700900790")
    for _ in range(2):  # every step applied twice, as a redelivery of the batch would
        async with app.state.sender.projections.pipeline() as pipeline:
            store.link(pipeline, "c-a", [key])
            store.update(pipeline, TENANT, "c-a", {"tier": "gold", "city": "Oslo"})
            store.update(pipeline, TENANT, "c-b", {"tier": "silver", "pet": "cat"})
            store.merge(pipeline, TENANT, "c-a", "c-b")
            store.update(pipeline, TENANT, "c-a", {"city": None})
            await pipeline.execute()
    assert await store.fields_of(key) == {"tier": "gold", "pet": "cat"}
