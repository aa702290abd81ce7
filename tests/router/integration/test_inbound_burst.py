"""A burst on the inbound topic: batches handled concurrently, new conversations offered together
(handlers/coalescing.py), reads and writes shared between handlers (parley_common.batching). Whatever the
interleaving: one conversation per customer, each customer's messages in order, no agent over capacity, and
every free slot used while conversations wait."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from parley_common.topics import INBOUND_MESSAGES

from .conftest import T0, Router, eventually, inbound

CUSTOMERS = 12
MESSAGES_EACH = 3
CAPACITY = {"ann": 3, "bob": 2, "cyd": 2}  # 7 slots for 12 new conversations


async def _all_routed(router: Router) -> list[dict[str, Any]] | None:
    items = (await router.ok("GET", "/v1/conversations", params={"limit": 100}))["items"]
    entries = 0
    for conv in items:
        timeline = (await router.ok("GET", f"/v1/conversations/{conv['id']}/timeline"))["items"]
        entries += sum(1 for entry in timeline if entry["kind"] == "inbound")
    return items if entries == CUSTOMERS * MESSAGES_EACH else None


async def test_a_burst_gives_one_conversation_per_customer_in_order_and_fills_every_free_slot(
        consuming_router: Router) -> None:
    router = consuming_router
    for login, capacity in CAPACITY.items():
        await router.agent(login, ["default"], capacity=capacity)
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "least_busy"})
    events = [inbound(user=f"u{customer:02d}", text=f"m{customer}-{n}", message_id=f"wamid.{customer}.{n}",
                      at=T0 + timedelta(seconds=n))
              for n in range(MESSAGES_EACH) for customer in range(CUSTOMERS)]
    await asyncio.gather(*(router.engine.publisher.publish(event, INBOUND_MESSAGES) for event in events))

    items = await eventually(lambda: _all_routed(router))
    assert sorted(conv["external_user_id"] for conv in items) == [f"u{c:02d}" for c in range(CUSTOMERS)]
    held = Counter(conv["assignee"]["id"] for conv in items if conv["status"] == "assigned")
    assert held == Counter(CAPACITY)  # every slot used, none overrun
    assert sum(1 for conv in items if conv["status"] == "queued") == CUSTOMERS - sum(CAPACITY.values())
    for conv in items:
        timeline = (await router.ok("GET", f"/v1/conversations/{conv['id']}/timeline"))["items"]
        texts = [entry["text"] for entry in timeline if entry["kind"] == "inbound"]
        customer = int(conv["external_user_id"][1:])
        assert texts == [f"m{customer}-{n}" for n in range(MESSAGES_EACH)]
