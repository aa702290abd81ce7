"""Requests sharing a dedup key take turns in one process; overlapping key sets never wait in a circle; a request
cancelled while waiting leaves nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from parley_ingest.handlers.intake import KeyTurns


async def test_requests_sharing_a_key_take_turns_and_others_run_at_once() -> None:
    turns, inside, most_inside = KeyTurns(), set(), {"shared": 0, "all": 0}

    async def request(name: str, keys: list[str]) -> None:
        async with turns.of(keys):
            inside.add(name)
            most_inside["shared"] = max(most_inside["shared"], len(inside & {"a", "b", "c"}))
            most_inside["all"] = max(most_inside["all"], len(inside))
            await asyncio.sleep(0.01)
            inside.discard(name)

    # a, b and c share k2 (in any order of their keys); d shares nothing
    await asyncio.wait_for(asyncio.gather(request("a", ["k1", "k2"]), request("b", ["k2", "k1"]),
                                          request("c", ["k2", "k3", "k2"]), request("d", ["k9"])), timeout=5)
    assert most_inside == {"shared": 1, "all": 2}
    assert turns._turns == {}


async def test_a_request_cancelled_while_waiting_leaves_no_turn_behind() -> None:
    turns = KeyTurns()
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.of(["k1"]):
            entered.set()
            await release.wait()

    async def waiter() -> None:
        async with turns.of(["k1", "k2"]):
            pass

    holding = asyncio.create_task(holder())
    await entered.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await holding
    assert turns._turns == {}
    async with turns.of(["k1", "k2"]):  # nothing left locked
        pass
