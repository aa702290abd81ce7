"""What the providers send, kept (payload shapes: reference §1.4-§1.12, §3.3, as in tests/ingest/fixtures/). One
WhatsApp customer stays one contact and one conversation whichever identifiers the webhooks carry (phone `wa_id`,
business-scoped user id, username) and when they change; list-reply descriptions, places and Flow answers reach
the timeline; a marketing opt-out and a paused template stop sends; reactions and edits change the entry they
refer to. Webhooks in through ingest; contacts, router and outbound read through their public HTTP APIs."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from e2e_customer import (
    AGENT,
    SUPERVISOR,
    InstagramJourney,
    Journey,
    TelegramJourney,
    inbound_entries,
    new_wamid,
)
from e2e_journey import NotYet, eventually, new_customer_phone
from e2e_provider import SmtpServer
from e2e_system import EMAIL, WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]


def new_bsuid() -> str:
    return f"GB.{random.randrange(10**19, 10**20)}"


def change(value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550001111", "phone_number_id": WHATSAPP.phone_number_id}, **value}}]}]}


def messages(contacts: list[dict[str, Any]], message: dict[str, Any]) -> dict[str, Any]:
    return change({"contacts": contacts, "messages": [message]} if contacts else {"messages": [message]})


def text(wamid: str, body: str, phone: str | None = None, bsuid: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"id": wamid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": body}}
    if phone:
        message["from"] = phone
    if bsuid:
        message["from_user_id"] = bsuid
    return message


def contact(phone: str | None = None, bsuid: str | None = None, username: str | None = None) -> dict[str, Any]:
    profile: dict[str, Any] = {"name": "Dana Li", **({"username": username} if username else {})}
    return {"profile": profile, **({"wa_id": phone} if phone else {}), **({"user_id": bsuid} if bsuid else {})}


async def timeline_shows(journey: Journey, wamids: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def probe() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        found = await journey.conversations()
        if len(found) != 1:
            raise NotYet(f"conversations: {found}")
        entries = await journey.timeline(found[0]["id"])
        shown = [entry["provider_message_id"] for entry in inbound_entries(entries)]
        if not set(wamids) <= set(shown):
            raise NotYet(f"timeline: {shown}")
        return found[0], entries

    return await eventually(probe, what=f"one conversation showing {wamids}")


async def test_phone_then_bsuid_then_username_only_is_one_contact_and_one_conversation(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)  # keyed by the phone it first wrote from
    bsuid = new_bsuid()
    first, _ = await journey.customer_writes("Hi, it's Dana")
    both, only_bsuid = new_wamid(), new_wamid()
    await journey.deliver(messages([contact(journey.phone, bsuid)], text(both, "Any news?", journey.phone, bsuid)))
    await journey.deliver(messages([contact(bsuid=bsuid, username=f"dana{bsuid[-6:]}")],
                                   text(only_bsuid, "I set a username", bsuid=bsuid)))

    conversation, entries = await timeline_shows(journey, [first, both, only_bsuid])
    assert conversation["external_user_id"] == journey.phone
    assert len(inbound_entries(entries)) == 3
    await journey.one_contact()  # contacts registers the customer apart from the router: it may come a moment later
    contacts = await journey.contacts()
    assert len(contacts) == 1
    assert [(i["channel_id"], i["external_user_id"]) for i in contacts[0]["identities"]] == [
        (WHATSAPP.id, journey.phone)]


async def test_a_changed_number_keeps_the_conversation(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    first, _ = await journey.customer_writes("Hello")
    new_phone = new_customer_phone("4477008")
    notice, later = new_wamid(), new_wamid()
    await journey.deliver(messages([], {
        "from": journey.phone, "id": notice, "timestamp": str(int(time.time())), "type": "system",
        "system": {"body": f"User Dana Li changed from {journey.phone} to {new_phone}", "wa_id": new_phone,
                   "type": "user_changed_number"}}))
    await journey.deliver(messages([contact(new_phone)], text(later, "New phone, same me", new_phone)))
    _, entries = await timeline_shows(journey, [first, later])
    assert any(entry["provider_message_id"] == notice for entry in entries)


async def test_a_conversation_opened_by_phone_gets_the_customers_bsuid_only_reply(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    bsuid = new_bsuid()
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text
    accepted = await journey.agent_sends_order_update()
    assert accepted.status_code == 202, accepted.text
    sent = await journey.outbound_state(accepted.json()["message_id"], "sent")
    # Meta's status of that send names the phone we wrote to and the customer's business-scoped id
    await journey.deliver(change({"statuses": [{
        "id": sent["provider_message_id"], "status": "delivered", "timestamp": str(int(time.time())),
        "recipient_id": journey.phone, "recipient_user_id": bsuid}]}))
    await journey.outbound_state(accepted.json()["message_id"], "delivered")

    reply = new_wamid()
    await journey.deliver(messages([contact(bsuid=bsuid, username=f"dana{bsuid[-6:]}")],
                                   text(reply, "Thanks!", bsuid=bsuid)))
    window = await journey.window_seen()  # the phone's window is open: the agent can answer free-form
    assert window["open"] is True
    conversation, _ = await timeline_shows(journey, [reply])
    assert conversation["external_user_id"] == journey.phone


async def test_list_descriptions_places_and_flow_answers_reach_the_timeline(system: System,
                                                                           http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    choice, place, flow = new_wamid(), new_wamid(), new_wamid()
    now = str(int(time.time()))
    sent: list[dict[str, Any]] = [
        {"from": journey.phone, "id": choice, "timestamp": now, "type": "interactive", "interactive": {
            "type": "list_reply", "list_reply": {"id": "slot_am", "title": "Morning", "description": "08:00-12:00"}}},
        {"from": journey.phone, "id": place, "timestamp": now, "type": "location", "location": {
            "latitude": 51.5033, "longitude": -0.1196, "name": "Depot South", "address": "2 Example Rd, London",
            "url": "https://depots.example/south"}},
        {"from": journey.phone, "id": flow, "timestamp": now, "type": "interactive", "interactive": {
            "type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
                                               "response_json": '{"flow_token": "tok-1", "slot": "am"}'}}},
    ]
    for message in sent:
        await journey.deliver(messages([contact(journey.phone)], message))
    _, entries = await timeline_shows(journey, [choice, place, flow])
    parts = {entry["provider_message_id"]: entry["parts"][0] for entry in inbound_entries(entries)}
    assert parts[choice]["description"] == "08:00-12:00" and parts[choice]["title"] == "Morning"
    assert (parts[place]["name"], parts[place]["address"], parts[place]["url"]) == (
        "Depot South", "2 Example Rd, London", "https://depots.example/south")
    assert parts[flow]["kind"] == "flow_reply" and parts[flow]["response"] == {"flow_token": "tok-1", "slot": "am"}


async def test_a_customer_who_stopped_marketing_gets_utility_but_no_marketing_templates(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    await journey.customer_writes("Hi")
    await journey.one_contact()
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text

    async def preference(choice: str, at: int) -> None:
        payload = change({"contacts": [contact(journey.phone)], "user_preferences": [{
            "wa_id": journey.phone, "detail": f"User requested to {choice} marketing messages",
            "category": "marketing_messages", "value": choice, "timestamp": str(at)}]})
        payload["entry"][0]["changes"][0]["field"] = "user_preferences"
        await journey.deliver(payload)

    async def opted_out(expected: bool) -> None:
        async def probe() -> None:
            window = await journey.window()
            identity = (await journey.contacts())[0]["identities"][0]
            if (window["marketing_opted_out"], identity.get("marketing_opted_out")) != (expected, expected):
                raise NotYet(f"window {window['marketing_opted_out']}, contact {identity}")

        await eventually(probe, what=f"marketing_opted_out={expected} on the window and the contact")

    async def sale() -> httpx.Response:
        template = {"channel_id": WHATSAPP.id, "recipient": {"external_user_id": journey.phone},
                    "content": {"kind": "template", "name": "spring_sale", "language": "en_US"}}
        return await http.post(f"{system.url('outbound')}/v1/messages", json=template,
                               headers=system.auth(AGENT, "agent"))

    now = int(time.time())
    await preference("stop", now)
    await opted_out(True)
    refused = await sale()
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "marketing_opted_out"
    utility = await journey.agent_sends_order_update()
    assert utility.status_code == 202, utility.text

    await preference("resume", now + 1)
    await opted_out(False)
    assert (await sale()).status_code == 202


async def test_a_template_meta_paused_is_never_sent_until_reinstated(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text

    async def template_event(event: str) -> None:
        outcome = await journey.deliver({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "time": int(time.time()), "changes": [{
                "field": "message_template_status_update", "value": {
                    "event": event, "message_template_id": 1689000000000001, "message_template_name": "order_update",
                    "message_template_language": "en_US", "message_template_category": "UTILITY",
                    "reason": "LOW_QUALITY" if event == "PAUSED" else "NONE"}}]}]})
        assert (outcome["published"], outcome["dead_lettered"]) == (1, 0)

    async def stored_as(status: str) -> None:
        async def probe() -> None:
            stored = (await journey.get("outbound", f"/v1/templates/{WHATSAPP.id}/order_update/en_US")).json()
            if stored["status"] != status:
                raise NotYet(str(stored))

        await eventually(probe, what=f"order_update {status} in outbound's template store")

    await template_event("PAUSED")
    await stored_as("paused")
    refused = await journey.agent_sends_order_update()
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "template_not_approved"
    await template_event("REINSTATED")
    await stored_as("approved")
    accepted = await journey.agent_sends_order_update()
    assert accepted.status_code == 202, accepted.text
    await journey.outbound_state(accepted.json()["message_id"], "sent")
    assert [send["template"]["name"] for send in system.provider.sends_to(journey.phone)] == ["order_update"]


async def test_a_reaction_attaches_to_the_message_it_is_for(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, _ = await journey.customer_writes("Where is my parcel?")
    conversation, _ = await journey.open_conversation_with(wamid)
    reply = await journey.agent_replies("It left the depot.")
    assert reply.status_code == 202, reply.text
    sent = await journey.outbound_state(reply.json()["message_id"], "sent")
    # the customer reacts to what their phone shows: the router has learnt the reply's provider id by then
    await journey.timeline_entry(conversation["id"], lambda e: e.get("provider_message_id") == sent[
        "provider_message_id"], what="the reply's provider id on its entry")

    reaction = new_wamid()
    await journey.deliver(messages([contact(journey.phone)], {
        "from": journey.phone, "id": reaction, "timestamp": str(int(time.time())), "type": "reaction",
        "reaction": {"message_id": sent["provider_message_id"], "emoji": "\N{THUMBS UP SIGN}"}}))
    ours = sent["provider_message_id"]
    shown = await journey.timeline_entry(
        conversation["id"], lambda e: e.get("provider_message_id") == ours and e.get("reactions"),
        what="the reaction on the agent's reply")
    assert shown["kind"] == "outbound" and shown["reactions"]["customer"]["emoji"] == "\N{THUMBS UP SIGN}"
    entries = await journey.timeline(conversation["id"])
    assert reaction not in {entry.get("provider_message_id") for entry in entries}  # no entry of its own


async def test_an_edited_telegram_message_changes_its_entry_and_keeps_the_original(system: System,
                                                                                  http: httpx.AsyncClient) -> None:
    journey = TelegramJourney(system, http)
    sent_at = int(time.time())
    provider_id, _ = await journey.customer_writes("See you at 5", at=sent_at)
    conversation, _ = await journey.open_conversation_with(provider_id)
    chat = {"id": int(journey.external_user_id), "type": "private", "first_name": "Tom"}
    message_id = int(provider_id.split(":")[1])
    await journey.deliver({"update_id": message_id + 7_000_000, "edited_message": {
        "message_id": message_id, "from": {**chat, "is_bot": False}, "chat": chat, "date": sent_at,
        "edit_date": sent_at + 30, "text": "See you at 6"}})
    shown = await journey.timeline_entry(conversation["id"],
                                         lambda e: e.get("provider_message_id") == provider_id and e.get("edited"),
                                         what="the edited entry")
    assert shown["text"] == "See you at 6"
    assert [revision["text"] for revision in shown["revisions"]] == ["See you at 5"]
    entries = await journey.timeline(conversation["id"])
    assert [e["provider_message_id"] for e in inbound_entries(entries)] == [provider_id]  # one entry, changed


async def test_a_whatsapp_edit_and_deletion_change_their_entries_and_keep_the_originals(
        system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)  # coexistence `edit` / `revoke` messages (tests/ingest/fixtures, Meta's shape)
    kept, _ = await journey.customer_writes("Deliver on Monday")
    conversation, _ = await journey.open_conversation_with(kept)
    regretted, _ = await journey.customer_writes("My card number is 4111 1111 1111 1111")
    await journey.open_conversation_with(regretted)
    sender = {"from": journey.phone, "timestamp": str(int(time.time()))}
    await journey.deliver(messages([contact(journey.phone)], {**sender, "id": new_wamid(), "type": "edit", "edit": {
        "original_message_id": kept, "message": {"type": "text", "text": {"body": "Deliver on Tuesday"}}}}))
    await journey.deliver(messages([contact(journey.phone)], {**sender, "id": new_wamid(), "type": "revoke",
                                                              "revoke": {"original_message_id": regretted}}))

    edited = await journey.timeline_entry(conversation["id"], lambda e: e.get("provider_message_id") == kept
                                          and e.get("edited"), what="the edited entry")
    assert edited["text"] == "Deliver on Tuesday"
    assert [revision["text"] for revision in edited["revisions"]] == ["Deliver on Monday"]
    deleted = await journey.timeline_entry(conversation["id"], lambda e: e.get("provider_message_id") == regretted
                                           and e.get("deleted"), what="the deleted entry")
    assert [revision["text"] for revision in deleted["revisions"]] == ["My card number is 4111 1111 1111 1111"]
    entries = await journey.timeline(conversation["id"])
    # no entries of their own (the two messages' order is not this test's matter: they may share a second, and
    # WhatsApp's timestamps are whole seconds)
    assert sorted(e["provider_message_id"] for e in inbound_entries(entries)) == sorted([kept, regretted])


async def test_an_instagram_deletion_marks_its_entry_deleted(system: System, http: httpx.AsyncClient) -> None:
    journey = InstagramJourney(system, http)
    mid, _ = await journey.customer_writes("Wrong photo, sorry")
    conversation, _ = await journey.open_conversation_with(mid)
    await journey.deliver(journey.messaging({"mid": mid, "is_deleted": True}))  # Meta's shape: the deleted mid
    deleted = await journey.timeline_entry(conversation["id"], lambda e: e.get("provider_message_id") == mid
                                           and e.get("deleted"), what="the deleted Instagram entry")
    assert [revision["text"] for revision in deleted["revisions"]] == ["Wrong photo, sorry"]
    assert len(inbound_entries(await journey.timeline(conversation["id"]))) == 1


async def test_telegram_reactions_attach_to_the_customers_message_and_to_the_agents_reply(
        system: System, http: httpx.AsyncClient) -> None:
    journey = TelegramJourney(system, http)
    provider_id, _ = await journey.customer_writes("Is the shop open on Sunday?")
    conversation, _ = await journey.open_conversation_with(provider_id)
    await journey.window_seen()
    reply = await journey.agent_replies("Yes, 10 to 4.")
    assert reply.status_code == 202, reply.text
    ours = (await journey.outbound_state(reply.json()["message_id"], "sent"))["provider_message_id"]
    assert ours.startswith(f"{journey.external_user_id}:")  # keyed as ingest keys Telegram messages
    await journey.timeline_entry(conversation["id"], lambda e: e.get("provider_message_id") == ours,
                                 what="the reply's provider id on its entry")
    chat = {"id": int(journey.external_user_id), "type": "private", "first_name": "Tom"}
    for update_id, message_id, emoji in ((provider_id, provider_id, "\N{FIRE}"), (ours, ours, "\N{THUMBS UP SIGN}")):
        await journey.deliver({"update_id": random.randrange(10**9, 2 * 10**9), "message_reaction": {
            "chat": chat, "message_id": int(message_id.split(":")[1]), "user": {**chat, "is_bot": False},
            "date": int(time.time()), "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": emoji}]}})
        shown = await journey.timeline_entry(conversation["id"], lambda e, target=update_id: e.get(
            "provider_message_id") == target and e.get("reactions"), what=f"the reaction on {update_id}")
        assert shown["reactions"]["customer"]["emoji"] == emoji
    assert len(inbound_entries(await journey.timeline(conversation["id"]))) == 1  # no entries of their own


async def test_a_telegram_user_who_blocked_the_bot_is_not_written_to_until_they_return(
        system: System, http: httpx.AsyncClient) -> None:
    journey = TelegramJourney(system, http)
    await journey.customer_writes("hello bot")
    await journey.window_seen()
    chat = {"id": int(journey.external_user_id), "type": "private", "first_name": "Tom"}

    async def membership(status: str, update_id: int) -> None:
        await journey.deliver({"update_id": update_id, "my_chat_member": {
            "chat": chat, "from": {**chat, "is_bot": False}, "date": int(time.time()),
            "old_chat_member": {"status": "member"}, "new_chat_member": {"status": status}}})

    async def reply_answers(status: int) -> httpx.Response:
        async def probe() -> httpx.Response:
            if (await journey.window())["subscribed"] is not (status == 202):
                raise NotYet("the window projection has not seen the change yet")
            response = await journey.agent_replies("Are you still there?")
            if response.status_code != status:
                raise NotYet(response.text)
            return response

        return await eventually(probe, what=f"a reply answered {status}")

    await membership("kicked", random.randrange(10**9, 2 * 10**9))
    refused = await reply_answers(422)
    assert refused.json()["error"]["code"] == "customer_blocked_bot"

    async def marked() -> None:
        identity = (await journey.one_contact())["identities"][0]
        if identity.get("blocked_the_bot") is not True:
            raise NotYet(str(identity))

    await eventually(marked, what="the block on the contact's identity")
    await membership("member", random.randrange(2 * 10**9, 3 * 10**9))
    await reply_answers(202)


async def test_an_email_reply_threads_under_the_customers_mail(system: System, http: httpx.AsyncClient,
                                                               smtp: SmtpServer) -> None:
    customer = f"dana.{uuid.uuid4().hex[:8]}@customer.example"
    first, latest = f"<{uuid.uuid4().hex}@customer.example>", f"<{uuid.uuid4().hex}@customer.example>"
    mail = (f"From: Dana Li <{customer}>\r\nTo: {EMAIL.address}\r\nSubject: Re: Invoice question\r\n"
            f"Message-ID: {latest}\r\nIn-Reply-To: {first}\r\nReferences: {first}\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nStill no invoice.\r\n").encode()
    relayed = await http.post(f"{system.url('ingest')}/webhooks/email/{EMAIL.id}", content=mail, headers={
        "Authorization": f"Bearer {EMAIL.inbound_secret}", "Content-Type": "message/rfc822"})
    assert relayed.status_code == 200, relayed.text

    async def replied() -> Any:
        sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
            "channel_id": EMAIL.id, "recipient": {"external_user_id": customer},
            "content": {"kind": "text", "text": "Sent again just now."}})
        assert sent.status_code == 202, sent.text
        received = [m for m, _ in smtp.inbox.messages if m["To"] == customer]
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            received = [m for m, _ in smtp.inbox.messages if m["To"] == customer]
        if not received or received[-1]["In-Reply-To"] is None:
            raise NotYet(f"the reply went out without the thread: {[dict(m) for m in received]}")
        return received[-1]

    # outbound learns of the mail from the bus: until it has, a reply goes out unthreaded (and is retried here)
    reply = await eventually(replied, what="a threaded reply")
    assert reply["Subject"] == "Re: Invoice question"
    assert reply["In-Reply-To"] == latest
    assert reply["References"].split() == [first, latest]
    assert reply["Message-ID"].endswith("@e2e.example>")


async def relay_mail(system: System, http: httpx.AsyncClient, sender: str, body: str, headers: str = "",
                     html: str | None = None) -> str:
    """A customer's mail through the inbound relay; answers its Message-ID."""
    message_id = f"<{uuid.uuid4().hex}@customer.example>"
    content = ("Content-Type: text/plain; charset=utf-8\r\n\r\n" + body if html is None else
               'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\n'
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b1\r\n"
               f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b1--\r\n")
    mail = (f"From: {sender}\r\nTo: {EMAIL.address}\r\nSubject: Delivery\r\nMessage-ID: {message_id}\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\n{headers}{content}").encode()
    relayed = await http.post(f"{system.url('ingest')}/webhooks/email/{EMAIL.id}", content=mail, headers={
        "Authorization": f"Bearer {EMAIL.inbound_secret}", "Content-Type": "message/rfc822"})
    assert relayed.status_code == 200, relayed.text
    return message_id


async def email_conversations(system: System, http: httpx.AsyncClient, address: str) -> list[dict[str, Any]]:
    response = await http.get(f"{system.url('router')}/v1/conversations", headers=system.auth(SUPERVISOR, "manager"),
                              params={"channel_id": EMAIL.id, "q": address})
    assert response.status_code == 200, response.text
    return [c for c in response.json()["items"] if c["external_user_id"] == address]


async def test_a_reply_to_the_agents_mail_reopens_its_conversation_and_another_sender_gets_their_own(
        system: System, http: httpx.AsyncClient, smtp: SmtpServer) -> None:
    customer = f"dana.{uuid.uuid4().hex[:8]}@customer.example"
    await relay_mail(system, http, customer, "Where is my order?")

    async def one_conversation() -> dict[str, Any]:
        found = await email_conversations(system, http, customer)
        if len(found) != 1:
            raise NotYet(str(found))
        return found[0]

    conversation = await eventually(one_conversation, what="the mail's conversation")
    sent = await http.post(f"{system.url('outbound')}/v1/messages", headers=system.auth(AGENT, "agent"), json={
        "channel_id": EMAIL.id, "recipient": {"external_user_id": customer},
        "content": {"kind": "text", "text": "It ships on Monday."}})
    assert sent.status_code == 202, sent.text

    async def our_message_id() -> str:
        entries = (await http.get(f"{system.url('router')}/v1/conversations/{conversation['id']}/timeline",
                                  headers=system.auth(SUPERVISOR, "manager"))).json()["items"]
        ids = [e["provider_message_id"] for e in entries if e["kind"] == "outbound" and e.get("provider_message_id")]
        if not ids:
            raise NotYet(str(entries))
        return str(ids[0])

    ours = await eventually(our_message_id, what="the agent's mail's Message-ID on the timeline")
    closed = await http.post(f"{system.url('router')}/v1/conversations/{conversation['id']}/close", json={},
                             headers=system.auth(SUPERVISOR, "manager"))
    assert closed.status_code == 200, closed.text

    threading = f"In-Reply-To: {ours}\r\nReferences: {ours}\r\n"
    colleague = f"sam.{uuid.uuid4().hex[:8]}@customer.example"
    await relay_mail(system, http, colleague, "I'm Dana's colleague: Monday is fine.", threading)
    reply = await relay_mail(system, http, customer, "Monday is too late!", threading)

    async def reopened() -> dict[str, Any]:
        found = await email_conversations(system, http, customer)
        if len(found) != 1 or found[0]["status"] == "closed":
            raise NotYet(str(found))
        return found[0]

    again = await eventually(reopened, what="the customer's conversation reopened by their reply")
    assert again["id"] == conversation["id"]
    await eventually(lambda: timeline_has(system, http, conversation["id"], reply), what="the reply on its timeline")
    others = await eventually(lambda: nonempty(email_conversations(system, http, colleague)),
                              what="the colleague's own conversation")
    assert [c["id"] for c in others] != [conversation["id"]]  # never mixed into another sender's thread


async def timeline_has(system: System, http: httpx.AsyncClient, conversation_id: str, provider_id: str) -> None:
    entries = (await http.get(f"{system.url('router')}/v1/conversations/{conversation_id}/timeline",
                              headers=system.auth(SUPERVISOR, "manager"))).json()["items"]
    if provider_id not in {e.get("provider_message_id") for e in entries}:
        raise NotYet(str(entries))


async def nonempty(found: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = await found
    if not items:
        raise NotYet("none yet")
    return items


@pytest.mark.parametrize("machine_headers", [
    "Auto-Submitted: auto-replied\r\n",
    "Return-Path: <>\r\n",
])
async def test_an_auto_reply_or_a_bounce_opens_no_conversation(system: System, http: httpx.AsyncClient,
                                                                machine_headers: str) -> None:
    sender = f"dana.{uuid.uuid4().hex[:8]}@customer.example"
    journey = Journey(system, http)
    journey.channel_id, journey.external_user_id = EMAIL.id, sender

    async def relay(extra: str, text: str) -> str:
        message_id = f"<{uuid.uuid4().hex}@customer.example>"
        mail = (f"From: {sender}\r\nTo: {EMAIL.address}\r\nSubject: Hello\r\n{extra}Message-ID: {message_id}\r\n"
                f"Date: {format_datetime(datetime.now(UTC))}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                f"{text}\r\n").encode()
        relayed = await http.post(f"{system.url('ingest')}/webhooks/email/{EMAIL.id}", content=mail, headers={
            "Authorization": f"Bearer {EMAIL.inbound_secret}", "Content-Type": "message/rfc822"})
        assert relayed.status_code == 200, relayed.text
        return message_id

    await relay(machine_headers, "I am away until Monday.")
    person = await relay("", "Back now: where is my invoice?")  # same customer: handled after the machine mail
    _, entries = await timeline_shows(journey, [person])
    assert [entry["provider_message_id"] for entry in inbound_entries(entries)] == [person]


async def test_a_telegram_album_is_one_timeline_entry(system: System, http: httpx.AsyncClient) -> None:
    journey = TelegramJourney(system, http)
    first, _ = await journey.customer_writes("two photos coming")
    conversation, _ = await journey.open_conversation_with(first)
    chat = {"id": int(journey.external_user_id), "type": "private", "first_name": "Tom"}
    base = int(first.split(":")[1])
    album = f"album{uuid.uuid4().hex[:8]}"
    for offset, caption in ((1, "the box"), (2, None)):
        message: dict[str, Any] = {
            "message_id": base + offset, "from": {**chat, "is_bot": False}, "chat": chat, "date": int(time.time()),
            "media_group_id": album, "photo": [{"file_id": f"photo-{album}-{offset}", "file_unique_id": f"u{offset}",
                                                "width": 90, "height": 90, "file_size": 1200}]}
        if caption:
            message["caption"] = caption
        await journey.deliver({"update_id": base + offset + 8_000_000, "message": message})
    second = f"{journey.external_user_id}:{base + 2}"

    async def grouped() -> dict[str, Any]:
        entries = inbound_entries(await journey.timeline(conversation["id"]))
        album_entries = [e for e in entries if e.get("group_id") == album]
        if len(album_entries) != 1 or len(album_entries[0]["parts"]) != 2:
            raise NotYet(str(album_entries))
        return album_entries[0]

    entry = await eventually(grouped, what="one entry holding both photos")
    assert entry["provider_message_id"] == f"{journey.external_user_id}:{base + 1}"
    assert [part["kind"] for part in entry["parts"]] == ["media", "media"] and entry["text"] == "the box"
    entries = await journey.timeline(conversation["id"])
    assert second not in {e.get("provider_message_id") for e in entries}
