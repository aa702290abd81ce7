"""TickBatcher: concurrent calls of one event-loop turn share one bulk call; failures reach the right callers."""

from __future__ import annotations

import asyncio
import gc

import pytest

from parley_common.batching import TickBatcher


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def double(self, items: list[int]) -> list[int | BaseException]:
        self.calls.append(list(items))
        await asyncio.sleep(0)
        return [ValueError(f"odd {item}") if item == 13 else item * 2 for item in items]


async def test_calls_of_one_turn_are_served_by_one_bulk_call_in_order() -> None:
    recorder = Recorder()
    batcher: TickBatcher[int, int] = TickBatcher(recorder.double)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 2 for n in range(10)]
    assert recorder.calls == [list(range(10))]
    assert await batcher.submit(21) == 42  # a later call starts a new bulk call
    assert recorder.calls[-1] == [21]


async def test_an_item_error_fails_only_that_caller() -> None:
    batcher: TickBatcher[int, int] = TickBatcher(Recorder().double)
    results = await asyncio.gather(*(batcher.submit(n) for n in (12, 13, 14)), return_exceptions=True)
    assert results[0] == 24 and results[2] == 28
    assert isinstance(results[1], ValueError) and str(results[1]) == "odd 13"


async def test_a_failed_bulk_call_fails_every_caller_of_it() -> None:
    async def broken(items: list[int]) -> list[int]:
        raise ConnectionError("database away")

    batcher: TickBatcher[int, int] = TickBatcher(broken)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    recorder = Recorder()
    batcher: TickBatcher[int, int] = TickBatcher(recorder.double, max_items=4)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(10))) == [n * 2 for n in range(10)]
    assert [len(call) for call in recorder.calls] == [4, 4, 2]


async def test_a_cancelled_caller_leaves_the_others_their_results() -> None:
    release = asyncio.Event()

    async def slow(items: list[int]) -> list[int]:
        await release.wait()
        return items

    batcher: TickBatcher[int, int] = TickBatcher(slow)
    first = asyncio.create_task(batcher.submit(1))
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0.01)
    first.cancel()
    release.set()
    assert await second == 2
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failure_after_its_caller_was_cancelled_is_not_reported_as_never_retrieved() -> None:
    """A webhook cancelled (its client gone, its time budget spent) while its shared call runs: when that call
    fails afterwards, asyncio must not log "Future exception was never retrieved" for the abandoned caller."""
    release = asyncio.Event()

    async def failing(items: list[int]) -> list[int]:
        await release.wait()
        raise ConnectionError("database away")

    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        batcher: TickBatcher[int, int] = TickBatcher(failing)
        caller = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        del caller, batcher
        gc.collect()
        assert reported == []
    finally:
        loop.set_exception_handler(None)
