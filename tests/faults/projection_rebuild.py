"""Redis is a cache: restarted empty, outbound's projections in it (the window facts, blocked identities, marketing
opt-outs, contacts' custom fields) are rebuilt, from the topics and outbound's own database. Meanwhile a send that
needs them is answered `window_facts_rebuilding` (503, retryable) — never refused for a window the cache forgot —
and afterwards: the reply inside the window goes out, a saved reply's {{field}} renders, the opted-out customer
gets no marketing template, the blocked identity stays blocked. Through the public APIs only."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from e2e_customer import Journey
from e2e_desk import Desk
from e2e_journey import NotYet, eventually
from e2e_system import WHATSAPP, System, wait_ready
from fault_servers import kill_server, local_server, start_again

REBUILDING = "window_facts_rebuilding"
# An integration sends and reads: it sees every customer of the tenant and holds no thread, whichever team the
# routing gave them to (the schedules before this one change it), so only the window's rules decide.
BOT = ("rebuild-bot", "integration")
SALE = "rebuild_spring_sale"  # a marketing template


def opt_out(phone: str) -> dict[str, Any]:
    """WhatsApp's `user_preferences` webhook: the customer stopped marketing messages."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "user_preferences", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": WHATSAPP.phone_number_id},
            "contacts": [{"profile": {"name": "Dana Li"}, "wa_id": phone}],
            "user_preferences": [{"wa_id": phone, "detail": "User requested to stop marketing messages",
                                  "category": "marketing_messages", "value": "stop",
                                  "timestamp": str(int(time.time()))}]}}]}]}


class Customers:
    """Three customers who wrote: one to reply to (with a custom field), one blocked, one who stopped marketing."""

    def __init__(self, system: System, client: httpx.AsyncClient) -> None:
        self.system, self.client = system, client
        self.writer, self.blocked, self.stopped = (Journey(system, client) for _ in range(3))
        self.saved_reply = ""

    async def send(self, journey: Journey, content: dict[str, Any]) -> httpx.Response:
        body = {"channel_id": WHATSAPP.id, "recipient": {"external_user_id": journey.external_user_id},
                "content": content}
        return await self.client.post(f"{self.system.url('outbound')}/v1/messages", json=body,
                                      headers=self.system.auth(*BOT))

    async def window(self, journey: Journey) -> httpx.Response:
        return await journey.get("outbound", f"/v1/windows/{WHATSAPP.id}/{journey.external_user_id}", login=BOT[0],
                                 role=BOT[1])

    async def prepare(self, desk: Desk) -> None:
        for journey in (self.writer, self.blocked, self.stopped):
            await journey.customer_writes("hello")
        card = await self.writer.one_contact()
        await desk.ok("PUT", "contacts", f"/v1/contacts/{card['id']}/fields/tier", json={"type": "text",
                                                                                        "value": "gold"})
        blocked = await self.blocked.one_contact()
        await desk.ok("POST", "contacts", f"/v1/contacts/{blocked['id']}/block",
                      json={"channel_id": WHATSAPP.id, "reason": "abuse"})
        await self.stopped.deliver(opt_out(self.stopped.phone))
        await desk.ok("PUT", "outbound", f"/v1/templates/{WHATSAPP.id}", json={
            "name": SALE, "language": "en_US", "category": "marketing", "status": "approved",
            "body": "Our spring sale starts today"})
        reply = await desk.ok("POST", "outbound", "/v1/saved-replies", json={
            "name": f"tier-{uuid.uuid4().hex[:6]}", "text": "Thanks, {{tier}} member"})
        self.saved_reply = reply["id"]

    async def answers(self, request: Any, seen: list[str]) -> httpx.Response:
        """`request`'s first answer that is not a retryable 503, noting each code on the way (`seen`)."""
        async def probe() -> httpx.Response:
            response: httpx.Response = await request()
            if response.status_code != 503:
                return response
            seen.append(response.json()["error"]["code"])
            raise NotYet(response.text)

        return await eventually(probe, within=60.0, what="an answer other than 503")

    async def projected(self, seen: list[str]) -> None:
        """Outbound's projections hold the window, the block, the opt-out and the field (a saved reply renders)."""
        async def facts() -> None:
            windows = [(await self.answers(lambda j=journey: self.window(j), seen)).json()
                       for journey in (self.writer, self.blocked, self.stopped)]
            writer, blocked, stopped = windows
            if writer["last_customer_message_at"] is None or not blocked["blocked"] or \
                    not stopped["marketing_opted_out"]:
                raise NotYet(str(windows))

        await eventually(facts, what="the window, the block and the opt-out in outbound's projection")
        before = len(self.rendered())
        saved = await self.answers(lambda: self.send(self.writer, {"kind": "saved_reply",
                                                                   "saved_reply_id": self.saved_reply}), seen)
        assert saved.status_code == 202, saved.text

        async def rendered() -> None:
            if len(self.rendered()) <= before:
                raise NotYet(str(self.system.provider.sends_to(self.writer.phone)))

        await eventually(rendered, what="the saved reply at the provider")
        assert self.rendered()[-1] == "Thanks, gold member"

    def rendered(self) -> list[str]:
        return [body["text"]["body"] for body in self.system.provider.sends_to(self.writer.phone)
                if body.get("type") == "text" and str(body["text"]["body"]).startswith("Thanks, ")]

    async def refused(self, journey: Journey, content: dict[str, Any], seen: list[str]) -> str:
        response = await self.answers(lambda: self.send(journey, content), seen)
        assert response.status_code == 422, response.text
        code: str = response.json()["error"]["code"]
        return code


async def restart_cache_under_outbound(system: System, endpoints: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        customers, desk = Customers(system, client), Desk(system, client)
        await customers.prepare(desk)
        before: list[str] = []
        await customers.projected(before)

        server = local_server(endpoints, "redis")
        await asyncio.to_thread(kill_server, server)
        await asyncio.to_thread(start_again, server)  # empty: nothing kept
        await asyncio.to_thread(wait_ready, system)
        restarted = time.monotonic()
        # the first read finds the projections lost (nothing checks before it: PROJECTION_CHECK_SECONDS)
        first = await customers.window(customers.writer)
        assert first.status_code == 503, first.text
        assert first.json()["error"]["code"] == REBUILDING and first.headers["Retry-After"], first.text
        seen = [REBUILDING]
        reply = await customers.answers(lambda: customers.send(customers.writer, {"kind": "text",
                                                                              "text": "inside the window still"}),
                                        seen)
        assert reply.status_code == 202, reply.text  # never "window closed" for a window the cache forgot
        rebuilt_s = time.monotonic() - restarted
        await customers.projected(seen)
        assert await customers.refused(customers.blocked, {"kind": "text", "text": "hi"}, seen) == "customer_blocked"
        sale = {"kind": "template", "name": SALE, "language": "en_US"}
        assert await customers.refused(customers.stopped, sale, seen) == "marketing_opted_out"
        assert set(seen) <= {REBUILDING, "cache_unavailable"}, seen
        return {"answered_503": dict(Counter(seen)), "reply_accepted_after_s": round(rebuilt_s, 2)}
