"""A steady stream through the public APIs while faults happen, and what must hold after each: signed WhatsApp
webhooks from a few customers and agent replies to them; every webhook ingest accepted on exactly one timeline
exactly once, one contact per customer, every accepted reply sent to the provider at most once with an outcome."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from e2e_customer import Journey, inbound_entries, new_wamid
from e2e_journey import NotYet, eventually, whatsapp_text
from e2e_system import WHATSAPP, System

TICK_S = 0.1  # per writer: ~10 webhooks a second at most, a reply every fifth tick
OUTCOMES = {"sent", "delivered", "read", "failed", "refused"}


@dataclass
class Customer:
    journey: Journey
    accepted: list[str] = field(default_factory=list)  # wamids ingest answered 200 for
    attempted: list[str] = field(default_factory=list)  # every wamid sent (an unanswered one may still be in)


@dataclass
class Stream:
    system: System
    client: httpx.AsyncClient
    customers: list[Customer]
    replies: dict[str, tuple[Customer, str]] = field(default_factory=dict)  # outbound message id → (to, text)
    quiet: bool = False  # nothing sent meanwhile
    _numbers: Any = field(default_factory=itertools.count)

    @classmethod
    def of(cls, system: System, client: httpx.AsyncClient, customers: int = 6) -> Stream:
        return cls(system, client, [Customer(Journey(system, client)) for _ in range(customers)])

    async def run(self, stop: asyncio.Event, writers: int = 1) -> None:
        """Until `stop`: `writers` loops at once (the short schedule's stream is one), each writing in turn for
        the customers and replying to one every fifth turn."""
        await asyncio.gather(*(self._writer(stop, first, writers) for first in range(writers)))

    async def _writer(self, stop: asyncio.Event, first: int, step: int) -> None:
        for tick in itertools.count(first, step):
            if stop.is_set():
                return
            if self.quiet:
                await asyncio.sleep(TICK_S)
                continue
            customer = self.customers[tick % len(self.customers)]
            await self._write(customer)
            if (tick // step) % 5 == 4:
                await self._reply(self.customers[(tick // 5) % len(self.customers)])
            await asyncio.sleep(TICK_S)

    def accepted_webhooks(self) -> int:
        return sum(len(customer.accepted) for customer in self.customers)

    def resume(self) -> None:
        self.quiet = False

    async def _write(self, customer: Customer) -> None:
        wamid = new_wamid()
        customer.attempted.append(wamid)
        payload = whatsapp_text(customer.journey.phone, wamid, f"message {next(self._numbers)}", int(time.time()),
                                WHATSAPP.phone_number_id)
        with contextlib.suppress(httpx.HTTPError):  # ingest down: not accepted (the provider would retry)
            if (await customer.journey.webhook(payload)).status_code == 200:
                customer.accepted.append(wamid)

    async def _reply(self, customer: Customer) -> None:
        if not customer.accepted:
            return
        text = f"reply {next(self._numbers)}"
        with contextlib.suppress(httpx.HTTPError):
            response = await customer.journey.agent_replies(text)
            if response.status_code == 202:
                self.replies[response.json()["message_id"]] = (customer, text)

    async def settled(self, within: float = 90.0) -> dict[str, int]:
        """Wait until every invariant holds (or fail with what was seen); answers the counts."""
        for customer in self.customers:
            await eventually(lambda customer=customer: self._customer_settled(customer), within=within,
                             what=f"customer {customer.journey.phone}'s messages, contact and conversation")
        for message_id, (customer, text) in self.replies.items():
            await eventually(lambda m=message_id, c=customer, t=text: self._reply_settled(m, c, t), within=within,
                             what=f"reply {message_id}'s outcome")
        return {"accepted_webhooks": self.accepted_webhooks(),
                "contacts": len(self.customers), "accepted_replies": len(self.replies),
                "replies_sent": sum(1 for _ in self._sent_replies())}

    async def _customer_settled(self, customer: Customer) -> None:
        journey = customer.journey
        contacts = await journey.contacts()
        if len(contacts) != 1:
            raise NotYet(f"{len(contacts)} contacts")
        conversations = await journey.conversations()
        if len(conversations) != 1:
            raise NotYet(f"{len(conversations)} conversations")
        shown = [entry.get("provider_message_id") for entry in
                 inbound_entries(await journey.timeline(conversations[0]["id"]))]
        duplicated = {wamid for wamid in shown if shown.count(wamid) > 1}
        assert not duplicated, f"on the timeline twice: {duplicated}"
        missing = set(customer.accepted) - set(shown)
        if missing:
            raise NotYet(f"{len(missing)} accepted messages not on the timeline yet")
        unknown = set(shown) - set(customer.attempted)
        if unknown:
            raise AssertionError(f"entries {customer.journey.phone} did not send: "
                                 f"{await self._whose(unknown, conversations[0])}")

    async def _whose(self, unknown: set[str], conversation: dict[str, Any]) -> str:
        """Who sent the entries a customer's timeline shows but they did not: which other customer of the stream
        (with that customer's own conversations), or nobody here — what tells a misrouted message apart from a
        number two journeys happened to share."""
        senders = {wamid: other for other in self.customers for wamid in other.attempted if wamid in unknown}
        told = [f"the conversation {conversation['id']} ({conversation.get('external_user_id')}, opened by "
                f"{conversation.get('opened_by')})"]
        for other in {id(other): other for other in senders.values()}.values():
            theirs = await other.journey.conversations()
            told.append(f"{sum(1 for s in senders.values() if s is other)} of {other.journey.phone}'s "
                        f"{len(other.attempted)}, whose conversations are {[c['id'] for c in theirs]}")
        if nobody := unknown - set(senders):
            told.append(f"{len(nobody)} sent by nobody of this stream: {sorted(nobody)}")
        return "; ".join(told)

    async def _reply_settled(self, message_id: str, customer: Customer, text: str) -> None:
        message = await customer.journey.outbound_message(message_id)
        sends = [body for body in self.system.provider.sends_to(customer.journey.phone)
                 if body.get("text", {}).get("body") == text]
        assert len(sends) <= 1, f"reply {message_id} reached the provider {len(sends)} times"
        if message["status"] not in OUTCOMES:
            raise NotYet(f"reply {message_id} {message['status']}")
        if message["status"] in {"sent", "delivered", "read"}:
            assert len(sends) == 1, f"reply {message_id} {message['status']} but never reached the provider"

    def _sent_replies(self) -> list[str]:
        return [text for customer, text in self.replies.values()
                if any(body.get("text", {}).get("body") == text
                       for body in self.system.provider.sends_to(customer.journey.phone))]
