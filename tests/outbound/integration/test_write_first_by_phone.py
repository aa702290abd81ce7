"""Writing first by phone on Telegram and Viber, on the real broker, database and cache: outbound's projection of
the contacts (phones from ContactCreated, a ContactUpdated edit and a merge) resolves the phone to the user on the
chosen channel, which the channel's rules then judge; nobody with the phone on the channel is
`customer_not_on_channel`. Contacts arrive as contacts publishes them (parley.contacts.events.v1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from outbound_helpers import TENANT, customer_message, eventually, publisher, window_open

from parley_common.events.contacts import ContactCreated, ContactsMerged, ContactUpdated, Identity
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import SystemPart
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES

pytestmark = pytest.mark.asyncio(loop_scope="module")


def _text(channel_id: str, phone: str) -> dict[str, Any]:
    return {"channel_id": channel_id, "recipient": {"phone": phone}, "content": {"kind": "text", "text": "hello"}}


async def _contact_event(app: FastAPI, event_type: type[Envelope], **fields: Any) -> None:
    await publisher(app).publish(event_type(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-ct",
                                            **fields), CONTACTS_EVENTS)


async def _sent_to(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    """Posts until the projection knows the phone (the refusal stores nothing); the user the message went to."""
    answer: dict[str, httpx.Response] = {}

    async def accepted() -> bool:
        answer["last"] = await client.post("/v1/messages", json=body)
        return answer["last"].status_code == 202
    await eventually(accepted)
    view = await client.get(f"/v1/messages/{answer['last'].json()['message_id']}")
    assert view.status_code == 200, view.text
    return str(view.json()["external_user_id"])


async def test_telegram_phone_resolves_to_the_contacts_user_on_that_bot(app: FastAPI,
                                                                        client: httpx.AsyncClient) -> None:
    await publisher(app).publish(customer_message("tg-bot", "telegram", "tg-phone-1", timedelta(minutes=5)),
                                 INBOUND_MESSAGES)
    await window_open(client, "tg-bot", "tg-phone-1")
    await _contact_event(app, ContactCreated, contact_id="ct-phone-1", phones=("+447700900123",),
                         identities=(Identity(channel_id="tg-bot", external_user_id="tg-phone-1"),
                                     Identity(channel_id="wa-main", external_user_id="447700900123")))
    assert await _sent_to(client, _text("tg-bot", "+44 7700 900123")) == "tg-phone-1"


async def test_viber_phone_from_an_edit_and_a_merge_then_refused_once_unsubscribed(
        app: FastAPI, client: httpx.AsyncClient) -> None:
    await publisher(app).publish(customer_message("viber-bot", "viber", "vb-phone-1=", timedelta(days=3)),
                                 INBOUND_MESSAGES)
    await window_open(client, "viber-bot", "vb-phone-1=")
    await _contact_event(app, ContactCreated, contact_id="ct-phone-2",
                         identities=(Identity(channel_id="viber-bot", external_user_id="vb-phone-1="),))
    await _contact_event(app, ContactUpdated, contact_id="ct-phone-2", changed={"phones": ["+447700900124"]})
    assert await _sent_to(client, _text("viber-bot", "447700900124")) == "vb-phone-1="

    # Another card of the same person, with a second phone, merged into it: that phone reaches them too.
    await _contact_event(app, ContactCreated, contact_id="ct-phone-3", phones=("+447700900125",))
    await _contact_event(app, ContactsMerged, contact_id="ct-phone-2", merged_contact_id="ct-phone-3",
                         identities=(Identity(channel_id="viber-bot", external_user_id="vb-phone-1="),),
                         phones=("+447700900124", "+447700900125"))  # the merged card's whole list, as contacts sends
    assert await _sent_to(client, _text("viber-bot", "+447700900125")) == "vb-phone-1="

    await publisher(app).publish(customer_message("viber-bot", "viber", "vb-phone-1=", timedelta(0),
                                                  parts=(SystemPart(system_kind="unsubscribed"),)), INBOUND_MESSAGES)

    async def unsubscribed() -> bool:
        return (await client.get("/v1/windows/viber-bot/vb-phone-1=")).json()["subscribed"] is False
    await eventually(unsubscribed)
    refused = await client.post("/v1/messages", json=_text("viber-bot", "+447700900124"))
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "not_subscribed"


async def test_nobody_with_the_phone_on_the_channel_is_refused_with_a_reason(app: FastAPI,
                                                                            client: httpx.AsyncClient) -> None:
    await _contact_event(app, ContactCreated, contact_id="ct-phone-4", phones=("+447700900126",),
                         identities=(Identity(channel_id="wa-main", external_user_id="447700900126"),
                                     Identity(channel_id="tg-bot", external_user_id="tg-phone-4")))
    await _refused_until(client, "tg-bot", "+447700900126", "customer_never_wrote")  # found; the bot's rule says no
    # The agent replaces the phone on the card: the old one reaches nobody any more, the new one the same user.
    await _contact_event(app, ContactUpdated, contact_id="ct-phone-4", changed={"phones": ["+447700900128"]})
    await _refused_until(client, "tg-bot", "+447700900126", "customer_not_on_channel")
    await _refused_until(client, "tg-bot", "+447700900128", "customer_never_wrote")
    for channel_id, phone in (("viber-bot", "+447700900128"), ("tg-bot", "+447700900199")):  # not on Viber; nobody
        refused = await client.post("/v1/messages", json=_text(channel_id, phone))
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == "customer_not_on_channel"
        assert refused.json()["error"]["details"]["field"] == "recipient.phone"
    malformed = await client.post("/v1/messages", json=_text("viber-bot", "+0 000 000 000"))
    assert malformed.status_code == 422 and malformed.json()["error"]["code"] == "invalid_phone_number"


async def _refused_until(client: httpx.AsyncClient, channel_id: str, phone: str, reason: str) -> None:
    async def refused_so() -> bool:
        answer = await client.post("/v1/messages", json=_text(channel_id, phone))
        return answer.status_code == 422 and answer.json()["error"]["code"] == reason
    await eventually(refused_so)
