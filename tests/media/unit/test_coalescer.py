"""Concurrent calls coalesce into one flush; each caller gets its own answer, or the flush's error."""

from __future__ import annotations

import asyncio

import pytest

from parley_media.adapters.coalescer import Coalescer


async def test_concurrent_calls_share_one_flush_and_get_their_own_answers() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushes.append(items)
        await asyncio.sleep(0.01)
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush)
    first = await asyncio.gather(*(coalescer.submit(n) for n in range(5)))
    assert first == [0, 10, 20, 30, 40] and flushes == [[0, 1, 2, 3, 4]]


async def test_calls_made_during_a_flush_go_in_the_next_one() -> None:
    flushes: list[list[str]] = []
    release = asyncio.Event()

    async def flush(items: list[str]) -> list[str]:
        flushes.append(items)
        if len(flushes) == 1:
            await release.wait()
        return items

    coalescer: Coalescer[str, str] = Coalescer(flush)
    early = asyncio.create_task(coalescer.submit("a"))
    await asyncio.sleep(0.01)
    late = [asyncio.create_task(coalescer.submit(x)) for x in ("b", "c")]
    await asyncio.sleep(0.01)
    release.set()
    assert await early == "a" and [await task for task in late] == ["b", "c"]
    assert flushes == [["a"], ["b", "c"]]


async def test_a_failed_flush_fails_each_of_its_callers() -> None:
    async def flush(items: list[int]) -> list[int]:
        raise RuntimeError("database down")

    coalescer: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(coalescer.submit(1), coalescer.submit(2), return_exceptions=True)
    assert [type(result) for result in results] == [RuntimeError, RuntimeError]
    with pytest.raises(RuntimeError):
        await coalescer.submit(3)  # and the next call is flushed again, not stuck
