"""DispatchCoalescer: offers requested while a dispatch runs are planned together in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from parley_router.domain.conversation import Conversation, open_conversation
from parley_router.handlers.coalescing import DispatchCoalescer

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)


def conversation(n: int, tenant: str = "acme") -> Conversation:
    return open_conversation(f"c{n}", tenant, "wa", "whatsapp", f"u{n}", T0)


class Dispatches:
    def __init__(self, fail: bool = False) -> None:
        self.rounds: list[tuple[str, list[str]]] = []
        self.fail = fail

    async def __call__(self, tenant_id: str, convs: Sequence[Conversation]) -> int:
        self.rounds.append((tenant_id, sorted(conv.id for conv in convs)))
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("redis away")
        return len(convs)


async def test_a_burst_costs_two_rounds_and_every_caller_waits_for_its_own() -> None:
    dispatches = Dispatches()
    coalescer = DispatchCoalescer(dispatches)
    first = asyncio.create_task(coalescer.offer(conversation(0)))
    await asyncio.sleep(0.001)  # the first round is running: the burst waits for the next one
    await asyncio.gather(first, *(coalescer.offer(conversation(n)) for n in range(1, 50)))
    assert dispatches.rounds == [("acme", ["c0"]), ("acme", sorted(f"c{n}" for n in range(1, 50)))]


async def test_tenants_are_dispatched_apart() -> None:
    dispatches = Dispatches()
    coalescer = DispatchCoalescer(dispatches)
    await asyncio.gather(coalescer.offer(conversation(1, "acme")), coalescer.offer(conversation(2, "globex")))
    assert sorted(dispatches.rounds) == [("acme", ["c1"]), ("globex", ["c2"])]


async def test_the_same_conversation_twice_is_planned_once() -> None:
    dispatches = Dispatches()
    coalescer = DispatchCoalescer(dispatches)
    await asyncio.gather(coalescer.offer(conversation(1)), coalescer.offer(conversation(1)))
    assert dispatches.rounds == [("acme", ["c1"])]


async def test_a_failed_round_fails_its_callers_and_the_next_round_runs() -> None:
    dispatches = Dispatches(fail=True)
    coalescer = DispatchCoalescer(dispatches)
    results = await asyncio.gather(coalescer.offer(conversation(1)), coalescer.offer(conversation(2)),
                                   return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    dispatches.fail = False
    await coalescer.offer(conversation(3))
    assert dispatches.rounds == [("acme", ["c1", "c2"]), ("acme", ["c3"])]
