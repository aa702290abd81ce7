"""Customer journeys through all five services running as real processes (see e2e_system.py). WhatsApp: a
customer writes, becomes a contact, lands in the router's inbox, an agent answers through outbound, the fake
Graph API gets the send, the delivery status comes back through ingest to outbound and the router's timeline;
a provider retry changes nothing; outside the 24 h window free-form is refused; an image is fetched, stored and
served. Telegram: a customer starts the bot and an agent answers. Each test is its own customer."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from e2e_customer import (
    AGENT,
    SUPERVISOR,
    Journey,
    TelegramJourney,
    inbound_entries,
    linked_media,
    media_records,
    new_wamid,
    send_image,
)
from e2e_journey import png_bytes, whatsapp_status, whatsapp_text
from e2e_system import TELEGRAM, TENANT, WHATSAPP, System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]

OPEN_STATUSES = {"bot", "queued", "assigned"}
PNG = png_bytes(4, 3)
# A 1x1 PNG whose IDAT declares two bytes more than it holds: Pillow reads "END\xae" as the next chunk name.
BROKEN_PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
              b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7V\xbd\xfa\x00\x00\x00\x00IEND\xaeB`\x82")


async def test_customer_writes_agent_replies_and_the_delivery_comes_back(system: System,
                                                                         http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, accepted = await journey.customer_writes("Hi, where is my parcel?")
    assert accepted["published"] == 1

    contact = await journey.one_contact()
    assert contact["phones"] == [f"+{journey.phone}"]
    assert contact["platform_name"] == "Dana Li"
    assert [(i["channel_id"], i["external_user_id"]) for i in contact["identities"]] == [(WHATSAPP.id, journey.phone)]

    conversation, entries = await journey.open_conversation_with(wamid)
    assert conversation["status"] in OPEN_STATUSES
    assert conversation["tenant_id"] == TENANT
    assert inbound_entries(entries)[0]["text"] == "Hi, where is my parcel?"

    window = await journey.window_seen()
    assert window["open"] is True
    reply = await journey.agent_replies("It left the depot this morning.")
    assert reply.status_code == 202, reply.text
    message_id = reply.json()["message_id"]

    sent = await journey.outbound_state(message_id, "sent")
    sends = system.provider.sends_to(journey.phone)
    assert len(sends) == 1
    assert sends[0]["type"] == "text"
    assert sends[0]["text"]["body"] == "It left the depot this morning."
    assert sent["provider_message_id"].startswith("wamid.FAKE")
    assert sent["sender"] == {"kind": "human", "login": AGENT, "bot_id": None}

    status = whatsapp_status(journey.phone, sent["provider_message_id"], "delivered", int(time.time()),
                             WHATSAPP.phone_number_id)
    response = await journey.webhook(status)
    assert response.status_code == 200, response.text
    await journey.outbound_state(message_id, "delivered")

    shown = await journey.timeline_entry(
        conversation["id"],
        lambda entry: entry.get("message_id") == message_id and entry.get("status") == "delivered",
        what="the delivered reply on the router timeline")
    assert shown["kind"] == "outbound"
    assert shown["sender"]["login"] == AGENT
    assert shown["content"]["text"] == "It left the depot this morning."
    assert shown["provider_message_id"] == sent["provider_message_id"]
    assert len(system.provider.sends_to(journey.phone)) == 1  # the status changed nothing on the provider side


async def test_a_provider_retry_of_the_same_webhook_changes_nothing(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, now = new_wamid(), time.time()
    payload = whatsapp_text(journey.phone, wamid, "Is my order on its way?", int(now), WHATSAPP.phone_number_id)
    first = await journey.deliver(payload)
    assert first["published"] == 1
    conversation, _ = await journey.open_conversation_with(wamid)

    retried = await journey.deliver(payload)  # Meta retries: identical bytes, same wamid
    assert retried["published"] == 0
    assert retried["duplicates"] == 1

    # A later message of the same customer travels the same partitions: once it is on the timeline, anything
    # the retry could have caused has been processed too.
    barrier, _ = await journey.customer_writes("Hello?", at=now + 1)  # a second later: the timeline's order
    await journey.open_conversation_with(barrier)

    entries = await journey.timeline(conversation["id"])
    assert [entry["provider_message_id"] for entry in inbound_entries(entries)] == [wamid, barrier]
    assert len(await journey.contacts()) == 1
    assert len(await journey.conversations()) == 1


async def test_two_simultaneous_deliveries_of_one_webhook_make_one_message(system: System,
                                                                          http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, now = new_wamid(), time.time()
    payload = whatsapp_text(journey.phone, wamid, "Anyone there?", int(now), WHATSAPP.phone_number_id)
    outcomes = await asyncio.gather(journey.deliver(payload), journey.deliver(payload))
    assert sorted(outcome["published"] for outcome in outcomes) == [0, 1]

    barrier, _ = await journey.customer_writes("Hello?", at=now + 1)
    _, entries = await journey.open_conversation_with(barrier)
    assert [entry["provider_message_id"] for entry in inbound_entries(entries)] == [wamid, barrier]
    assert len(await journey.conversations()) == 1


async def test_outside_the_24h_window_free_form_is_refused_and_nothing_is_sent(system: System,
                                                                             http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    synced = await http.post(f"{system.url('outbound')}/v1/templates/{WHATSAPP.id}/sync",
                             headers=system.auth(SUPERVISOR, "manager"))
    assert synced.status_code == 200, synced.text
    yesterday = time.time() - 25 * 3600
    await journey.customer_writes("Are you open on Sunday?", at=yesterday)

    window = await journey.window_seen()
    assert window["open"] is False

    reply = await journey.agent_replies("Yes, from ten to four.")
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "template_required"
    refused = await journey.outbound_message(error["details"]["message_id"])
    assert refused["status"] == "refused"

    # The approved template may still go: once it reached the provider, the refused free-form demonstrably did not.
    accepted = await journey.agent_sends_order_update()
    assert accepted.status_code == 202, accepted.text
    await journey.outbound_state(accepted.json()["message_id"], "sent")
    sends = system.provider.sends_to(journey.phone)
    assert [send["type"] for send in sends] == ["template"]
    assert sends[0]["template"]["name"] == "order_update"


async def test_an_image_is_fetched_stored_and_served_by_media(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, media_ref = await send_image(journey, PNG, "broken lid")
    conversation, _ = await journey.open_conversation_with(wamid)

    entry = await linked_media(journey, conversation["id"], wamid)
    assert entry["text"] == "broken lid"
    [media] = media_records(entry["media"])
    assert media["mime_type"] == "image/png"
    assert media["size_bytes"] == len(PNG)
    assert system.provider.media_requests.count(f"file:{media_ref}") == 1

    record = await journey.get("media", f"/v1/media/{media['media_id']}", login=AGENT, role="agent")
    assert record.status_code == 200, record.text
    download = await http.get(record.json()["download_url"])  # a signed link: no bearer token
    assert download.status_code == 200
    assert download.content == PNG


async def test_telegram_customer_writes_and_the_agent_answers(system: System, http: httpx.AsyncClient) -> None:
    journey = TelegramJourney(system, http)
    provider_id, accepted = await journey.customer_writes("/start order-4471")
    assert accepted["published"] == 1
    contact = await journey.one_contact()
    assert [(i["channel_id"], i["username"]) for i in contact["identities"]] == [(TELEGRAM.id, "tom_e2e")]
    conversation, entries = await journey.open_conversation_with(provider_id)
    assert conversation["status"] in OPEN_STATUSES
    assert inbound_entries(entries)[0]["text"] == "/start order-4471"

    window = await journey.window()
    assert window["has_window"] is False  # Telegram: no messaging window once the user started the bot
    reply = await journey.agent_replies("Hello Tom, how can we help?")
    assert reply.status_code == 202, reply.text
    message_id = reply.json()["message_id"]
    sent = await journey.outbound_state(message_id, "sent")
    sends = [body for endpoint, body in system.provider.requests
             if endpoint == "telegram:sendMessage" and str(body.get("chat_id")) == journey.external_user_id]
    assert [body["text"] for body in sends] == ["Hello Tom, how can we help?"]

    shown = await journey.timeline_entry(
        conversation["id"], lambda entry: entry.get("message_id") == message_id and entry.get("status") == "sent",
        what="the sent Telegram reply on the router timeline")
    assert shown["sender"]["login"] == AGENT
    assert shown["provider_message_id"] == sent["provider_message_id"]


async def test_the_timeline_lists_the_image_as_one_media_record(system: System, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    wamid, _ = await send_image(journey, PNG, "a dent")
    conversation, _ = await journey.open_conversation_with(wamid)
    entry = await linked_media(journey, conversation["id"], wamid)
    [media] = entry["media"]
    assert media.get("state") == "stored", entry["media"]
    assert media.get("mime_type") == "image/png", entry["media"]


async def test_a_corrupt_image_is_settled_and_does_not_hold_up_the_next(system: System,
                                                                         http: httpx.AsyncClient) -> None:
    """Runs last: with the bug the poison record keeps media's consumer busy for the rest of the module."""
    journey = Journey(system, http)
    torn, _ = await send_image(journey, BROKEN_PNG, "torn")
    good, _ = await send_image(journey, PNG, "the right one")
    conversation, _ = await journey.open_conversation_with(good)
    await linked_media(journey, conversation["id"], good)
    # Stored without a thumbnail, or failed: either way the timeline must say what became of it.
    entry = await linked_media(journey, conversation["id"], torn, within=15.0)
    assert [m["state"] for m in media_records(entry["media"])] in (["stored"], ["failed"])
