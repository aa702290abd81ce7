"""The customer's side of the browser tests: signed WhatsApp webhooks into ingest (as Meta sends them), and
reads through the console's API pass-through where a test needs an id the screen does not show."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx
from e2e_journey import meta_signed, new_customer_phone, whatsapp_change, whatsapp_image, whatsapp_status, whatsapp_text
from e2e_system import CONSOLE, INSTAGRAM, TELEGRAM, WHATSAPP, System


class Customer:
    def __init__(self, system: System, name: str) -> None:
        self.system = system
        self.name = f"{name} {random.randrange(1000, 9999)}"
        self.phone = new_customer_phone()

    def writes(self, text: str, at: float | None = None) -> str:
        wamid = f"wamid.CONSOLE{uuid.uuid4().hex}"
        payload = whatsapp_text(self.phone, wamid, text, int(at or time.time()), WHATSAPP.phone_number_id, self.name)
        self._deliver(payload)
        return wamid

    def writes_many(self, texts: list[str], first_at: float) -> None:
        """Many messages in one webhook (as Meta batches them), a second apart from `first_at` on."""
        payload = whatsapp_text(self.phone, "", "", 0, WHATSAPP.phone_number_id, self.name)
        payload["entry"][0]["changes"][0]["value"]["messages"] = [
            {"from": self.phone, "id": f"wamid.CONSOLE{uuid.uuid4().hex}", "timestamp": str(int(first_at) + n),
             "type": "text", "text": {"body": text}} for n, text in enumerate(texts)]
        self._deliver(payload)

    def sends_image(self, media_ref: str, caption: str) -> None:
        """An image message; the fake Graph API serves (or refuses) its file under `media_ref`."""
        wamid = f"wamid.CONSOLE{uuid.uuid4().hex}"
        self._deliver(whatsapp_image(self.phone, wamid, media_ref, int(time.time()), WHATSAPP.phone_number_id,
                                     caption))

    def changes(self, change: dict[str, Any]) -> None:
        """An edit, deletion or reaction of an earlier message (`edit` / `revoke` / `reaction` and its object)."""
        self._deliver(whatsapp_change(self.phone, change, WHATSAPP.phone_number_id, self.name))

    def reports(self, provider_message_id: str, status: str) -> None:
        """The provider's delivery receipt for a message the agent sent."""
        self._deliver(whatsapp_status(self.phone, provider_message_id, status, int(time.time()),
                                      WHATSAPP.phone_number_id))

    def never_gets(self, provider_message_id: str, title: str) -> None:
        """The provider's receipt that a message could not be delivered, with Meta's error."""
        payload = whatsapp_status(self.phone, provider_message_id, "failed", int(time.time()), WHATSAPP.phone_number_id)
        [status] = payload["entry"][0]["changes"][0]["value"]["statuses"]
        status["errors"] = [{"code": 131047, "title": title, "message": title,
                             "error_data": {"details": "More than 24 hours have passed since the customer replied"}}]
        self._deliver(payload)

    def _console(self, login: str, role: str = "agent") -> httpx.Client:
        return httpx.Client(base_url=self.system.url(CONSOLE), headers=self.system.auth(login, role), timeout=30)

    def _deliver(self, payload: dict[str, Any]) -> None:
        """Synchronously: Playwright's sync API holds the thread's event loop."""
        body, headers = meta_signed(WHATSAPP.app_secret, payload)
        response = httpx.post(f"{self.system.url('ingest')}/webhooks/whatsapp/{WHATSAPP.id}", content=body,
                              headers=headers, timeout=30)
        assert response.status_code == 200, response.text

    @property
    def search(self) -> str:
        """What the inbox search finds this customer by."""
        return self.phone

    def conversation_status(self, login: str, role: str) -> str:
        """Where the router holds this customer's conversation, once it holds one."""
        with self._console(login, role) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = client.get("/v1/conversations", params={"q": self.search, "limit": 1}).json()["items"]
                if found:
                    return str(found[0]["status"])
                time.sleep(0.2)
        raise AssertionError(f"no conversation of {self.name} within 30 s")

    def wait_for_messages(self, login: str, count: int) -> None:
        """Until the newest timeline page of this customer's conversation holds `count` of their messages."""
        with self._console(login) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = client.get("/v1/conversations", params={"q": self.search, "limit": 1}).json()["items"]
                entries = client.get(f"/v1/conversations/{found[0]['id']}/timeline",
                                     params={"from": "latest"}).json()["items"] if found else []
                if sum(entry["kind"] == "inbound" for entry in entries) >= count:
                    return
                time.sleep(0.2)
        raise AssertionError(f"{count} messages of {self.name} not stored within 60 s")

    def outbound_entries(self, login: str) -> list[dict[str, Any]]:
        """The agent's messages on this customer's timeline, read as the agent through the console."""
        with self._console(login) as client:
            found = client.get("/v1/conversations", params={"q": self.phone, "limit": 10}).json()["items"]
            entries: list[dict[str, Any]] = []
            for conversation in found:
                entries += client.get(f"/v1/conversations/{conversation['id']}/timeline").json()["items"]
        return [entry for entry in entries if entry["kind"] == "outbound"]


class TelegramCustomer(Customer):
    """A Telegram user writing to the bot (the webhook carries the channel's secret); `phone` is theirs, but
    Telegram does not tell the bot: only an agent who learns it can put it on the card."""

    def __init__(self, system: System, name: str) -> None:
        super().__init__(system, name)
        self.user_id = str(random.randrange(10**9, 10**10))
        self._updates = random.randrange(10**8, 9 * 10**8)

    @property
    def search(self) -> str:
        return self.user_id

    def writes(self, text: str, at: float | None = None) -> str:
        self._updates += 1
        chat = {"id": int(self.user_id), "type": "private", "first_name": self.name}
        update = {"update_id": self._updates, "message": {
            "message_id": self._updates % 100_000, "from": {**chat, "is_bot": False, "language_code": "en"},
            "chat": chat, "date": int(at or time.time()), "text": text}}
        response = httpx.post(f"{self.system.url('ingest')}/webhooks/telegram/{TELEGRAM.id}", json=update,
                              headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM.webhook_secret}, timeout=30)
        assert response.status_code == 200, response.text
        return f"{self.user_id}:{self._updates % 100_000}"


class InstagramCustomer(Customer):
    """An Instagram user (IGSID) writing to the business account, Meta-signed. The webhook names nobody: contacts
    reads the name and picture from the (fake) Graph API's profile, which the test registers first."""

    def __init__(self, system: System, name: str) -> None:
        super().__init__(system, name)
        self.user_id = str(random.randrange(10**15, 10**16))

    @property
    def search(self) -> str:
        return self.user_id

    def writes(self, text: str, at: float | None = None) -> str:
        mid = f"aWdfCONSOLE{uuid.uuid4().hex}"
        payload = {"object": "instagram", "entry": [{"id": INSTAGRAM.account_id, "time": int(time.time() * 1000),
                                                      "messaging": [{
                                                          "sender": {"id": self.user_id},
                                                          "recipient": {"id": INSTAGRAM.account_id},
                                                          "timestamp": int((at or time.time()) * 1000),
                                                          "message": {"mid": mid, "text": text}}]}]}
        body, headers = meta_signed(INSTAGRAM.app_secret, payload)
        response = httpx.post(f"{self.system.url('ingest')}/webhooks/instagram/{INSTAGRAM.id}", content=body,
                              headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return mid
