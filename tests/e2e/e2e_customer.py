"""A customer's journey seen only through the services' public HTTP APIs: webhooks into ingest, reads from
contacts, router, outbound and media, and waits (polling with a deadline) for the system to catch up."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from typing import Any

import httpx
from e2e_journey import NotYet, eventually, new_customer_phone, post_meta_webhook, whatsapp_image, whatsapp_text
from e2e_system import INSTAGRAM, TELEGRAM, WHATSAPP, System

AGENT = "alice"
TEAM = "support"  # alice's team; every conversation is routed to it (e2e_system.staff_the_tenant)
SUPERVISOR = "sam"


def new_wamid() -> str:
    return f"wamid.E2E{uuid.uuid4().hex}"


def inbound_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in entries if entry.get("kind") == "inbound"]


class Journey:
    """One WhatsApp customer's view of the system, through the services' public HTTP APIs only."""

    channel_id = WHATSAPP.id

    def __init__(self, system: System, client: httpx.AsyncClient, phone: str | None = None) -> None:
        self.system = system
        self.client = client
        self.phone = phone or new_customer_phone()
        self.external_user_id = self.phone  # no business-scoped user id in these webhooks: the wa_id keys them

    async def customer_writes(self, text: str, at: float | None = None) -> tuple[str, dict[str, Any]]:
        """A text message (sent `at`, default now); answers its wamid and ingest's outcome."""
        wamid = new_wamid()
        return wamid, await self.deliver(whatsapp_text(self.phone, wamid, text, int(at or time.time()),
                                                       WHATSAPP.phone_number_id))

    async def deliver(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A signed webhook that ingest must accept (200 only once Kafka has it)."""
        response = await self.webhook(payload)
        assert response.status_code == 200, response.text
        outcome: dict[str, Any] = response.json()
        return outcome

    async def webhook(self, payload: dict[str, Any]) -> httpx.Response:
        return await post_meta_webhook(self.client, self.system.url("ingest"), WHATSAPP.id, WHATSAPP.app_secret,
                                       payload)

    async def get(self, service: str, path: str, login: str = SUPERVISOR, role: str = "manager",
                  **params: Any) -> httpx.Response:
        return await self.client.get(f"{self.system.url(service)}{path}", params=params,
                                     headers=self.system.auth(login, role))

    def contact_search(self) -> dict[str, str]:
        return {"phone": f"+{self.phone}"}

    async def contacts(self) -> list[dict[str, Any]]:
        response = await self.get("contacts", "/v1/contacts/search", **self.contact_search())
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def conversations(self) -> list[dict[str, Any]]:
        response = await self.get("router", "/v1/conversations", channel_id=self.channel_id, limit=200)
        assert response.status_code == 200, response.text
        return [c for c in response.json()["items"] if c["external_user_id"] == self.external_user_id]

    async def timeline(self, conversation_id: str) -> list[dict[str, Any]]:
        response = await self.get("router", f"/v1/conversations/{conversation_id}/timeline")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def window(self) -> dict[str, Any]:
        response = await self.get("outbound", f"/v1/windows/{self.channel_id}/{self.external_user_id}", login=AGENT,
                                  role="agent")
        assert response.status_code == 200, response.text
        window: dict[str, Any] = response.json()
        return window

    async def agent_replies(self, text: str) -> httpx.Response:
        body = {"channel_id": self.channel_id, "recipient": {"external_user_id": self.external_user_id},
                "content": {"kind": "text", "text": text}}
        return await self.client.post(f"{self.system.url('outbound')}/v1/messages", json=body,
                                      headers=self.system.auth(AGENT, "agent"))

    async def agent_sends_order_update(self) -> httpx.Response:
        """The approved `order_update` template (the fake Graph API's) to the customer's phone."""
        template = {"channel_id": self.channel_id, "recipient": {"external_user_id": self.phone},
                    "content": {"kind": "template", "name": "order_update", "language": "en_US",
                                "variables": {"1": "Dana", "2": "12 GBP"}}}
        return await self.client.post(f"{self.system.url('outbound')}/v1/messages", json=template,
                                      headers=self.system.auth(AGENT, "agent"))

    async def outbound_message(self, message_id: str) -> dict[str, Any]:
        response = await self.get("outbound", f"/v1/messages/{message_id}", login=AGENT, role="agent")
        assert response.status_code == 200, response.text
        message: dict[str, Any] = response.json()
        return message

    # --- waits ---------------------------------------------------------------------------------------
    async def one_contact(self) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            found = await self.contacts()
            if not found:
                raise NotYet("no contact yet")
            return found[0]

        return await eventually(probe, what=f"a contact with user id {self.external_user_id}")

    async def open_conversation_with(self, provider_message_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async def probe() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            found = await self.conversations()
            if not found:
                raise NotYet("no conversation yet")
            entries = await self.timeline(found[0]["id"])
            if not any(entry.get("provider_message_id") == provider_message_id for entry in entries):
                raise NotYet(f"conversation {found[0]['id']} timeline: {entries}")
            return found[0], entries

        return await eventually(probe, what=f"a conversation showing {provider_message_id}")

    async def window_seen(self) -> dict[str, Any]:
        """Outbound learns of the customer's message from the bus: wait until its projection has it."""
        async def probe() -> dict[str, Any]:
            window = await self.window()
            if window["last_customer_message_at"] is None:
                raise NotYet(str(window))
            return window

        return await eventually(probe, what="outbound's window projection of the customer's message")

    async def outbound_state(self, message_id: str, state: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            message = await self.outbound_message(message_id)
            if message["status"] != state:
                raise NotYet(str(message))
            return message

        return await eventually(probe, what=f"outbound message {message_id} {state}")

    async def timeline_entry(self, conversation_id: str, matches: Any, what: str) -> dict[str, Any]:
        async def probe() -> dict[str, Any]:
            entries = await self.timeline(conversation_id)
            found = [entry for entry in entries if matches(entry)]
            if not found:
                raise NotYet(str(entries))
            return found[0]

        return await eventually(probe, what=what)


class TelegramJourney(Journey):
    """A Telegram customer: the private chat's id is the user id; the webhook carries the channel's secret."""

    channel_id = TELEGRAM.id

    def __init__(self, system: System, client: httpx.AsyncClient) -> None:
        super().__init__(system, client)
        self.external_user_id = str(random.randrange(10**9, 10**10))
        self._updates = itertools.count(random.randrange(10**8, 9 * 10**8))

    async def customer_writes(self, text: str, at: float | None = None) -> tuple[str, dict[str, Any]]:
        """Answers the provider message id the router keys the entry on: `{chat id}:{message id}`."""
        update_id = next(self._updates)
        chat = {"id": int(self.external_user_id), "type": "private", "first_name": "Tom", "username": "tom_e2e"}
        update = {"update_id": update_id, "message": {
            "message_id": update_id % 100_000, "from": {**chat, "is_bot": False, "language_code": "en"},
            "chat": chat, "date": int(at or time.time()), "text": text}}
        return f"{self.external_user_id}:{update_id % 100_000}", await self.deliver(update)

    def contact_search(self) -> dict[str, str]:
        return {"user_id": self.external_user_id}

    async def webhook(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"{self.system.url('ingest')}/webhooks/telegram/{TELEGRAM.id}", json=payload,
                                      headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM.webhook_secret})


class InstagramJourney(Journey):
    """An Instagram customer (IGSID) writing to the business account; Meta signs with the app secret."""

    channel_id = INSTAGRAM.id

    def __init__(self, system: System, client: httpx.AsyncClient) -> None:
        super().__init__(system, client)
        self.external_user_id = str(random.randrange(10**15, 10**16))

    async def customer_writes(self, text: str, at: float | None = None) -> tuple[str, dict[str, Any]]:
        mid = f"aWdfE2E{uuid.uuid4().hex}"
        return mid, await self.deliver(self.messaging({"mid": mid, "text": text}, at))

    def messaging(self, message: dict[str, Any], at: float | None = None) -> dict[str, Any]:
        return {"object": "instagram", "entry": [{"id": INSTAGRAM.account_id, "time": int(time.time() * 1000),
                                                   "messaging": [{
                                                       "sender": {"id": self.external_user_id},
                                                       "recipient": {"id": INSTAGRAM.account_id},
                                                       "timestamp": int((at or time.time()) * 1000),
                                                       "message": message}]}]}

    def contact_search(self) -> dict[str, str]:
        return {"user_id": self.external_user_id}

    async def webhook(self, payload: dict[str, Any]) -> httpx.Response:
        return await post_meta_webhook(self.client, self.system.url("ingest"), INSTAGRAM.id, INSTAGRAM.app_secret,
                                       payload, channel_type="instagram")


async def send_image(journey: Journey, image: bytes, caption: str) -> tuple[str, str]:
    """The customer sends an image the fake Graph API will serve; answers (wamid, provider media id)."""
    media_ref = f"e2e{uuid.uuid4().hex[:12]}"
    journey.system.provider.media_files[media_ref] = image
    wamid = new_wamid()
    await journey.deliver(whatsapp_image(journey.phone, wamid, media_ref, int(time.time()), WHATSAPP.phone_number_id,
                                         caption=caption))
    return wamid, media_ref


async def linked_media(journey: Journey, conversation_id: str, wamid: str, within: float = 60.0) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        entries = await journey.timeline(conversation_id)
        entry = next((e for e in entries if e.get("provider_message_id") == wamid), None)
        # An attachment shows pending from the moment its message does; what the callers read is its outcome.
        if entry is None or not entry.get("media") or any(
                record.get("state") == "pending" for record in media_records(entry["media"])):
            raise NotYet(str(entry))
        return entry

    return await eventually(probe, within=within, what=f"the image of {wamid} settled on the timeline")


def media_records(value: Any) -> list[dict[str, Any]]:
    """Every dict carrying a media_id inside a timeline entry's `media`, however deeply nested: the router nests
    WhatsApp's records one level down today (see test_the_timeline_lists_the_image_as_one_media_record)."""
    if isinstance(value, dict):
        if "media_id" in value:
            return [value]
        value = list(value.values())
    if isinstance(value, list):
        return [record for item in value for record in media_records(item)]
    return []
