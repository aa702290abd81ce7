"""What the journeys share: WhatsApp webhooks signed like Meta signs them, and polling with a deadline."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import struct
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
POLL_EVERY = 0.1


class NotYet(Exception):
    """Raised by a probe whose condition does not hold yet; the message says what it saw."""


async def eventually(probe: Callable[[], Awaitable[T]], within: float = 60.0, what: str = "condition") -> T:
    """Call `probe` until it returns without NotYet; fail with its last observation after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await probe()
        except NotYet as not_yet:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {within}s; last seen: {not_yet}") from None
        await asyncio.sleep(POLL_EVERY)


_DRAWN: set[str] = set()


def new_customer_phone(block: str = "4477009") -> str:
    """A UK mobile number (07700 9xxxxx block by default, digits only as WhatsApp's wa_id) never drawn before in
    this run: a module's journeys share one namespace, and two drawing the same number would be one customer to
    the system (a few hundred draws from 90,000 numbers meet each other every few dozen runs)."""
    while (phone := f"{block}{random.randrange(10_000, 100_000)}") in _DRAWN:
        pass
    _DRAWN.add(phone)
    return phone


def whatsapp_text(phone: str, wamid: str, text: str, timestamp: int, phone_number_id: str,
                  name: str = "Dana Li") -> dict[str, Any]:
    message = {"from": phone, "id": wamid, "timestamp": str(timestamp), "type": "text", "text": {"body": text}}
    return _envelope(phone_number_id, {"contacts": [{"profile": {"name": name}, "wa_id": phone}],
                                       "messages": [message]})


def whatsapp_change(phone: str, change: dict[str, Any], phone_number_id: str, name: str = "Dana Li") -> dict[str, Any]:
    """A message that changes an earlier one (`edit`, `revoke`, `reaction`: the type's own object in `change`)."""
    message = {"from": phone, "id": f"wamid.E2E{uuid.uuid4().hex}", "timestamp": str(int(time.time())), **change}
    return _envelope(phone_number_id, {"contacts": [{"profile": {"name": name}, "wa_id": phone}],
                                       "messages": [message]})


def whatsapp_image(phone: str, wamid: str, media_id: str, timestamp: int, phone_number_id: str,
                   caption: str) -> dict[str, Any]:
    message = {"from": phone, "id": wamid, "timestamp": str(timestamp), "type": "image",
               "image": {"id": media_id, "mime_type": "image/png", "sha256": "e2e", "caption": caption}}
    return _envelope(phone_number_id, {"contacts": [{"profile": {"name": "Dana Li"}, "wa_id": phone}],
                                       "messages": [message]})


def whatsapp_status(phone: str, wamid: str, status: str, timestamp: int, phone_number_id: str) -> dict[str, Any]:
    return _envelope(phone_number_id, {"statuses": [{
        "id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": phone,
        "pricing": {"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
                    "category": "service"}}]})


def _envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
                  **value}}]}]}


def meta_signed(app_secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook signed as Meta signs it."""
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


async def post_meta_webhook(client: httpx.AsyncClient, ingest: str, channel_id: str, app_secret: str,
                            payload: dict[str, Any], channel_type: str = "whatsapp") -> httpx.Response:
    body, headers = meta_signed(app_secret, payload)
    return await client.post(f"{ingest}/webhooks/{channel_type}/{channel_id}", content=body, headers=headers)


def png_bytes(width: int, height: int) -> bytes:
    """A valid RGB PNG of one colour, built by hand (no imaging library needed by the tests)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xc0\x30\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))
