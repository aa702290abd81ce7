"""An agent's first hour through the public HTTP APIs and topics only (all five services as real processes, the
fake provider behind them; no injected event, no write into a store): offers accepted and declined, away while
finishing, an uploaded file sent, templates an agent can pick, what the customer received on the timeline
(a template as rendered, an email's subject, cc and bcc), /metrics on every service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, Journey
from e2e_desk import MANAGER, Desk, published_changes, send
from e2e_journey import NotYet, eventually, png_bytes
from e2e_provider import SmtpServer
from e2e_system import EMAIL, SERVICES, WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

OTHER_AGENT = "bob"
TEAM = "desk"
OFFER_TIMEOUT = 5  # the smallest a team takes: the sweep (every second here) would expire an unaccepted offer
PNG = png_bytes(6, 4)


@pytest.fixture
async def desk(system: System, http: httpx.AsyncClient) -> Desk:
    desk = Desk(system, http)
    await desk.team(TEAM, [AGENT, OTHER_AGENT], offer_timeout_seconds=OFFER_TIMEOUT)
    return desk


async def test_metrics_answer_200_on_every_service(system: System, http: httpx.AsyncClient) -> None:
    for service in SERVICES:
        response = await http.get(f"{system.url(service)}/metrics", follow_redirects=False)
        assert response.status_code == 200, (service, response.status_code)
        assert "# TYPE" in response.text
        assert response.headers["content-type"].startswith("text/plain")


async def test_an_accepted_offer_stays_and_a_declined_one_goes_to_the_other_agent(
        system: System, http: httpx.AsyncClient, desk: Desk, infra_endpoints: dict[str, str]) -> None:
    await desk.presence(AGENT, "online")
    await desk.presence(OTHER_AGENT, "away")  # finishing: offered nothing
    first = Journey(system, http)
    wamid, _ = await first.customer_writes("A long message that takes a while to read…")
    conversation, _ = await first.open_conversation_with(wamid)
    assert await desk.offered(conversation["id"]) == AGENT

    accepted = await desk.act(AGENT, conversation["id"], "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["offer_expires_at"] is None
    again = await desk.act(AGENT, conversation["id"], "accept")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "no_pending_offer")
    await asyncio.sleep(OFFER_TIMEOUT + 2)  # past the offer timeout, with the sweep running every second
    kept = await desk.conversation(conversation["id"])
    assert (kept["status"], kept["assignee"]) == ("assigned", {"kind": "agent", "id": AGENT})
    changes = await published_changes(infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], system.namespace,
                                      conversation["id"], until="offer_accepted")
    # no contact_changed: the conversation named the card its first message creates from the moment it opened
    assert [event["change"] for event in changes] == ["opened", "offered", "offer_accepted"]
    assert changes[-1]["actor"] == AGENT and changes[-1]["offer_expires_at"] is None

    await desk.presence(OTHER_AGENT, "online")
    second = Journey(system, http)
    wamid, _ = await second.customer_writes("Another question")
    conversation, _ = await second.open_conversation_with(wamid)
    offered_to = await desk.offered(conversation["id"])
    other = OTHER_AGENT if offered_to == AGENT else AGENT
    not_theirs = await desk.act(other, conversation["id"], "decline")
    assert (not_theirs.status_code, not_theirs.json()["error"]["code"]) == (409, "no_pending_offer")
    declined = await desk.act(offered_to, conversation["id"], "decline")
    assert declined.status_code == 200, declined.text
    assert await desk.offered(conversation["id"], not_to=offered_to) == other
    changes = await published_changes(infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], system.namespace,
                                      conversation["id"], until="offer_declined")
    assert changes[-1]["previous_assignee"] == {"kind": "agent", "id": offered_to}
    assert changes[-1]["status"] == "queued" and changes[-1]["actor"] == offered_to


async def test_an_agent_going_away_finishes_accepted_work_and_hands_back_offers(
        system: System, http: httpx.AsyncClient, desk: Desk) -> None:
    await desk.presence(OTHER_AGENT, "offline")
    await desk.presence(AGENT, "online")
    kept_journey, offered_journey = Journey(system, http), Journey(system, http)
    wamid, _ = await kept_journey.customer_writes("Please check my order")
    kept, _ = await kept_journey.open_conversation_with(wamid)
    await desk.offered(kept["id"])
    assert (await desk.act(AGENT, kept["id"], "accept")).status_code == 200
    wamid, _ = await offered_journey.customer_writes("And mine?")
    pending, _ = await offered_journey.open_conversation_with(wamid)
    await desk.offered(pending["id"])

    stepped_away = await desk.presence(AGENT, "away")
    assert stepped_away["previous"] == "online"
    returned = await desk.conversation(pending["id"])
    assert (returned["status"], returned["assignee"]) == ("queued", {"kind": "team", "id": TEAM})
    third = Journey(system, http)
    wamid, _ = await third.customer_writes("Anyone?")
    waiting, _ = await third.open_conversation_with(wamid)
    await asyncio.sleep(2)  # a dispatch round or two: an away agent is offered nothing
    assert (await desk.conversation(waiting["id"]))["status"] == "queued"

    reply = await kept_journey.agent_replies("Your order ships today.")  # finishing the accepted one
    assert reply.status_code == 202, reply.text
    closed = await desk.act(AGENT, kept["id"], "close", note="shipped")
    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    await desk.presence(AGENT, "offline")


async def test_an_uploaded_file_is_sent_to_the_customer(system: System, http: httpx.AsyncClient, desk: Desk) -> None:
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Can you send me the invoice?")
    await journey.open_conversation_with(wamid)
    await journey.window_seen()
    uploaded = await desk.upload(AGENT, WHATSAPP.id, "invoice.png", PNG, "image/png")
    assert uploaded["state"] == "stored"

    # at once, as an agent would: no waiting, no event written by the test
    sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
        "channel_id": WHATSAPP.id, "recipient": {"external_user_id": journey.phone},
        "content": {"kind": "media", "media_id": uploaded["id"], "caption": "Your invoice"}})
    assert sent.status_code == 202, sent.text
    await journey.outbound_state(sent.json()["message_id"], "sent")
    [send] = system.provider.sends_to(journey.phone)
    assert send["type"] == "image" and send["image"]["caption"] == "Your invoice"
    assert any(upload.data == PNG for upload in system.provider.uploads)


async def test_an_uploaded_file_goes_out_in_a_saved_reply_and_a_template_header(
        system: System, http: httpx.AsyncClient, desk: Desk) -> None:
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Which form do I fill in?")
    await journey.open_conversation_with(wamid)
    await journey.window_seen()
    form = await desk.upload(MANAGER, WHATSAPP.id, "form.png", PNG, "image/png")
    reply = await desk.ok("POST", "outbound", "/v1/saved-replies", json={
        "name": f"form-{uuid.uuid4().hex[:6]}", "text": "Here is the form", "media_id": form["id"]})
    await desk.ok("PUT", "outbound", f"/v1/templates/{WHATSAPP.id}", json={
        "name": "form_ready", "language": "en_US", "category": "utility", "status": "approved",
        "header": {"format": "image"}, "body": "Your form {{1}} is attached.", "variables": [{"name": "1"}]})

    saved = await send(desk, AGENT, journey, {"kind": "saved_reply", "saved_reply_id": reply["id"]})
    templated = await send(desk, AGENT, journey, {"kind": "template", "name": "form_ready", "language": "en_US",
                                                  "variables": {"1": "B-12"}, "media_id": form["id"]})
    for message_id in (saved, templated):
        await journey.outbound_state(message_id, "sent")
    sends = system.provider.sends_to(journey.phone)
    assert [send["type"] for send in sends] == ["image", "template"]
    assert sends[0]["image"]["caption"] == "Here is the form"
    [header] = [c for c in sends[1]["template"]["components"] if c["type"] == "header"]
    assert "id" in header["parameters"][0]["image"]


async def test_agents_read_the_approved_templates_and_only_managers_change_them(
        system: System, http: httpx.AsyncClient, desk: Desk) -> None:
    approved = {"name": "delivery_slot", "language": "en_US", "category": "utility", "status": "approved",
                "header": {"format": "image"}, "body": "Hi {{1}}, pick a slot: {{2}}",
                "buttons": [{"type": "quick_reply", "text": "Morning"}],
                "variables": [{"name": "1"}, {"name": "2", "type": "dropdown", "options": ["am", "pm"]}]}
    pending = {**approved, "name": "delivery_draft", "status": "pending"}
    for template in (approved, pending):
        await desk.ok("PUT", "outbound", f"/v1/templates/{WHATSAPP.id}", json=template)

    for role, login in (("agent", AGENT), ("integration", "crm-bot")):
        listed = await desk.ok("GET", "outbound", "/v1/templates", login, role, params={"channel_id": WHATSAPP.id})
        assert {t["status"] for t in listed} == {"approved"}  # the pending draft is not theirs to see
        [shown] = [t for t in listed if t["name"] == "delivery_slot"]
        assert shown["variables"][1] == {"name": "2", "type": "dropdown", "options": ["am", "pm"],
                                         "max_length": 1024}
        assert shown["header"]["format"] == "image" and shown["buttons"][0]["text"] == "Morning"
        one = await desk.call("GET", "outbound", f"/v1/templates/{WHATSAPP.id}/delivery_slot/en_US", login, role)
        assert one.status_code == 200 and one.json()["body"] == approved["body"]
        draft = await desk.call("GET", "outbound", f"/v1/templates/{WHATSAPP.id}/delivery_draft/en_US", login, role)
        assert draft.status_code == 404
        change = await desk.call("PUT", "outbound", f"/v1/templates/{WHATSAPP.id}", login, role, json=approved)
        assert change.status_code == 403
    everything = await desk.ok("GET", "outbound", "/v1/templates", MANAGER, "manager",
                               params={"channel_id": WHATSAPP.id})
    assert {t["name"] for t in everything} >= {"delivery_slot", "delivery_draft"}


async def test_the_timeline_shows_the_template_as_the_customer_received_it(
        system: System, http: httpx.AsyncClient, desk: Desk) -> None:
    await desk.ok("PUT", "outbound", f"/v1/templates/{WHATSAPP.id}", json={
        "name": "order_news", "language": "en_US", "category": "utility", "status": "approved",
        "header": {"format": "text", "text": "Order news"}, "body": "Hi {{1}}, your total is {{2}}.",
        "footer": "Parley demo", "variables": [{"name": "1"}, {"name": "2"}]})
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("What do I owe?")
    conversation, _ = await journey.open_conversation_with(wamid)
    sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
        "channel_id": WHATSAPP.id, "recipient": {"external_user_id": journey.phone},
        "content": {"kind": "template", "name": "order_news", "language": "en_US",
                    "variables": {"1": "Dana", "2": "12 GBP"}}})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]
    entry = await journey.timeline_entry(conversation["id"], lambda e: e.get("message_id") == message_id
                                         and e.get("status") == "sent", what="the template on the timeline")
    assert entry["text"] == "Order news\nHi Dana, your total is 12 GBP.\nParley demo"
    assert entry["content"]["name"] == "order_news"


async def test_the_timeline_shows_an_emails_subject_cc_and_bcc(system: System, http: httpx.AsyncClient,
                                                                smtp: SmtpServer, desk: Desk) -> None:
    customer = f"dana.{uuid.uuid4().hex[:8]}@customer.example"
    mail = (f"From: Dana Li <{customer}>\r\nTo: {EMAIL.address}\r\nSubject: Invoice question\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@customer.example>\r\nDate: {format_datetime(datetime.now(UTC))}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nWhere is my invoice?\r\n").encode()
    relayed = await http.post(f"{system.url('ingest')}/webhooks/email/{EMAIL.id}", content=mail, headers={
        "Authorization": f"Bearer {EMAIL.inbound_secret}", "Content-Type": "message/rfc822"})
    assert relayed.status_code == 200, relayed.text

    async def opened() -> dict[str, Any]:
        listed = await desk.ok("GET", "router", "/v1/conversations", params={"channel_id": EMAIL.id})
        mine = [c for c in listed["items"] if c["external_user_id"] == customer]
        if not mine:
            raise NotYet(str(listed["items"]))
        return mine[0]

    conversation = await eventually(opened, what="the email conversation")
    options = {"subject": "Re: Invoice question", "cc": ["accounts@customer.example"],
               "bcc": ["audit@e2e.example"]}
    sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
        "channel_id": EMAIL.id, "recipient": {"external_user_id": customer},
        "content": {"kind": "text", "text": "Attached again."}, "email": options})
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["message_id"]
    journey = Journey(system, http)
    entry = await journey.timeline_entry(conversation["id"], lambda e: e.get("message_id") == message_id
                                         and e.get("status") == "sent", what="the email on the timeline")
    assert entry["email"] == options
    assert entry["text"] == "Attached again."
    [(received, recipients)] = [(m, r) for m, r in smtp.inbox.messages if m["To"] == customer]
    assert received["Subject"] == "Re: Invoice question" and "audit@e2e.example" in recipients


async def test_openapi_tells_the_error_codes_of_offers_templates_and_uploads(system: System,
                                                                               http: httpx.AsyncClient) -> None:
    documents = {service: (await http.get(f"{system.url(service)}/openapi.json")).json()
                 for service in ("router", "outbound", "media")}
    for action in ("take", "accept", "decline", "reopen", "archive"):
        operation = documents["router"]["paths"][f"/v1/conversations/{{conversation_id}}/{action}"]["post"]
        assert "no_pending_offer" in operation["responses"]["409"]["description"]
        error = operation["responses"]["422"]["content"]["application/json"]["schema"]
        assert error["$ref"].endswith("/ErrorEnvelope")
    templates = documents["outbound"]["paths"]["/v1/templates/{channel_id}"]["put"]["responses"]
    assert "managers and owners" in templates["403"]["description"]
    upload = documents["media"]["paths"]["/v1/media"]["post"]["responses"]
    assert {"201", "404", "413", "422"} <= set(upload)
