"""The conversation and the customer, through the public HTTP APIs only (issue 14): a conversation carries the
customer's contact id — a new customer's from the moment it opens (the card its first message creates), a known
one's from contacts' events; the card opens from it; a customer's history spans their channels and survives a
merge; card changes (labels, name, fields, block) reach the open conversation at once; a first message that never
left opens no conversation, and an e-mail with nothing open is history, not a queued conversation."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, SUPERVISOR, Journey, TelegramJourney
from e2e_journey import NotYet, eventually
from e2e_system import EMAIL, TELEGRAM, WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]


async def call(journey: Journey, method: str, service: str, path: str, body: dict[str, Any] | None = None,
               login: str = AGENT, role: str = "agent") -> dict[str, Any]:
    response = await journey.client.request(method, f"{journey.system.url(service)}{path}", json=body,
                                            headers=journey.system.auth(login, role))
    assert response.status_code < 300, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def conversation_showing(journey: Journey, conversation_id: str, what: str, **expected: Any) -> dict[str, Any]:
    """The conversation once every `expected` field has its value (the card's events are asynchronous)."""
    async def probe() -> dict[str, Any]:
        conv = await call(journey, "GET", "router", f"/v1/conversations/{conversation_id}", login=SUPERVISOR,
                          role="manager")
        if any(conv.get(field) != value for field, value in expected.items()):
            raise NotYet(str({field: conv.get(field) for field in expected}))
        return conv

    return await eventually(probe, within=30.0, what=what)


async def history(journey: Journey, contact_id: str) -> dict[str, Any]:
    return await call(journey, "GET", "router", f"/v1/conversations/history?contact_id={contact_id}",
                      login=SUPERVISOR, role="manager")


async def test_the_conversation_opens_the_card_and_the_history_spans_channels_and_merges(
        system: System, http: httpx.AsyncClient) -> None:
    whatsapp = Journey(system, http)
    wamid, _ = await whatsapp.customer_writes("Hi, my order 4471 is late")
    opened, _ = await whatsapp.open_conversation_with(wamid)
    card = await whatsapp.one_contact()
    assert opened["contact_id"] == card["id"]  # named as it opened: the card its first message creates
    conv = await conversation_showing(whatsapp, opened["id"], "the contact id on the conversation",
                                      contact_id=card["id"])

    shown = await call(whatsapp, "GET", "contacts", f"/v1/contacts/{conv['contact_id']}")  # the agent opens it
    assert [(i["channel_id"], i["external_user_id"]) for i in shown["identities"]] == [(WHATSAPP.id,
                                                                                       whatsapp.phone)]
    first = await history(whatsapp, card["id"])
    assert [item["id"] for item in first["items"]] == [opened["id"]], first

    telegram = TelegramJourney(system, http)  # the same person writes on Telegram: a card of its own first
    provider_id, _ = await telegram.customer_writes("/start order-4471")
    on_telegram, _ = await telegram.open_conversation_with(provider_id)
    other = await conversation_showing(telegram, on_telegram["id"], "the Telegram card on its conversation",
                                       contact_id=(await telegram.one_contact())["id"])

    await call(whatsapp, "POST", "contacts", f"/v1/contacts/{card['id']}/merge",
               {"other_contact_id": other["contact_id"]})
    await conversation_showing(telegram, on_telegram["id"], "the surviving card on the Telegram conversation",
                               contact_id=card["id"])
    both = await history(whatsapp, card["id"])
    # newest opened first (opened_at is the provider's time, whole seconds here: the two may tie)
    assert {item["id"] for item in both["items"]} == {on_telegram["id"], opened["id"]}, both
    assert [item["opened_at"] for item in both["items"]] == sorted((i["opened_at"] for i in both["items"]),
                                                                   reverse=True)
    assert {item["channel_id"] for item in both["items"]} == {WHATSAPP.id, TELEGRAM.id}
    by_old_card = await history(whatsapp, other["contact_id"])  # the merged-away id leads to the survivor
    assert by_old_card["contact_id"] == card["id"]
    assert [item["id"] for item in by_old_card["items"]] == [item["id"] for item in both["items"]]


async def test_card_changes_reach_the_open_conversation_at_once(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Do you ship to Norway?")
    opened, _ = await journey.open_conversation_with(wamid)
    card = await journey.one_contact()
    await conversation_showing(journey, opened["id"], "the contact id", contact_id=card["id"])

    await call(journey, "POST", "contacts", f"/v1/contacts/{card['id']}/labels", {"add": ["vip"]})
    await call(journey, "PATCH", "contacts", f"/v1/contacts/{card['id']}", {"display_name": "Dana Li-Berg"})
    await call(journey, "PUT", "contacts", f"/v1/contacts/{card['id']}/fields/tier", {"type": "text",
                                                                                     "value": "gold"})
    conv = await conversation_showing(journey, opened["id"], "label, name and field on the conversation",
                                      labels=["vip"], customer_name="Dana Li-Berg", contact_fields={"tier": "gold"})
    assert conv["status"] != "closed"

    async def in_vip_tab() -> list[str]:
        page = await call(journey, "GET", "router", f"/v1/conversations?label=vip&channel_id={WHATSAPP.id}",
                          login=SUPERVISOR, role="manager")
        ids = [item["id"] for item in page["items"]]
        if opened["id"] not in ids:
            raise NotYet(str(ids))
        return ids

    await eventually(in_vip_tab, within=10.0, what="the inbox label filter showing the conversation")

    await call(journey, "POST", "contacts", f"/v1/contacts/{card['id']}/block",
               {"channel_id": WHATSAPP.id, "reason": "abuse"})
    await conversation_showing(journey, opened["id"], "the block on the open conversation, no new message needed",
                               blocked=True)
    hidden = await call(journey, "GET", "router", f"/v1/conversations?channel_id={WHATSAPP.id}&limit=200",
                        login=SUPERVISOR, role="manager")
    assert opened["id"] not in [item["id"] for item in hidden["items"]]


async def test_a_refused_first_message_opens_nothing_and_the_one_that_left_opens_the_agents(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)  # a new number that never wrote: free-form is refused (no window)
    refused = await journey.agent_replies("Hello from the shop")
    assert refused.status_code == 422, refused.text
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text
    accepted = await journey.agent_sends_order_update()
    assert accepted.status_code == 202, accepted.text
    message_id = accepted.json()["message_id"]

    async def one_conversation() -> dict[str, Any]:
        found = await journey.conversations()
        if not found:
            raise NotYet("no conversation")
        return found[0]

    conv = await eventually(one_conversation, within=30.0, what="the conversation the template opened")
    shown = await journey.timeline_entry(conv["id"], lambda entry: entry.get("message_id") == message_id,
                                         what="the template on the timeline")
    assert shown["kind"] == "outbound"
    assert [entry["kind"] for entry in await journey.timeline(conv["id"])].count("outbound") == 1  # not the refused
    conv = await conversation_showing(journey, conv["id"], "the conversation with the agent who wrote",
                                      status="assigned")
    assert conv["assignee"] == {"kind": "agent", "id": AGENT}
    assert len(await journey.conversations()) == 1


async def test_an_email_to_someone_with_nothing_open_is_history_not_a_queued_conversation(
        system: System, http: httpx.AsyncClient) -> None:
    whatsapp = Journey(system, http)  # the customer is in a WhatsApp thread: an e-mail may still go (the seeds)
    wamid, _ = await whatsapp.customer_writes("Please send me the invoice by mail")
    thread, _ = await whatsapp.open_conversation_with(wamid)
    address = f"dana.{uuid.uuid4().hex[:8]}@customer.example"
    sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
        "channel_id": EMAIL.id, "recipient": {"external_user_id": address},
        "content": {"kind": "text", "text": "Your invoice is attached."}, "email": {"subject": "Invoice"}})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]

    async def the_email() -> dict[str, Any]:
        listed = await call(whatsapp, "GET", "router", f"/v1/conversations?channel_id={EMAIL.id}&limit=200",
                            login=SUPERVISOR, role="manager")
        found = [c for c in listed["items"] if c["external_user_id"] == address]
        if not found:
            raise NotYet("no conversation of the e-mail yet")
        return found[0]

    email = await eventually(the_email, within=30.0, what="the e-mail in the customer's history")
    assert email["status"] == "closed" and email["assignee"] is None
    shown = await whatsapp.timeline_entry(email["id"], lambda e: e.get("message_id") == message_id,
                                          what="the e-mail on its timeline")
    assert shown["email"]["subject"] == "Invoice"
    queued = await call(whatsapp, "GET", "router", f"/v1/conversations?status=queued&channel_id={EMAIL.id}",
                        login=SUPERVISOR, role="manager")
    assert address not in [c["external_user_id"] for c in queued["items"]]
    still = await call(whatsapp, "GET", "router", f"/v1/conversations/{thread['id']}", login=SUPERVISOR,
                       role="manager")
    assert still["status"] != "closed"
