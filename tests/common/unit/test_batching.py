"""TickBatcher: concurrent calls of one event-loop turn share one bulk call; failures reach the right callers.
LingerGate: callers close together go on together (and so share those calls); a lone caller does not wait."""

from __future__ import annotations

import asyncio
import gc

import pytest

from parley_common.batching import LingerGate, TickBatcher


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


GATE_SECONDS = 0.2  # long against the gaps below, so a loaded machine's scheduling does not split a group


async def test_callers_close_together_go_on_together_and_share_each_call() -> None:
    recorder = Recorder()
    batcher: TickBatcher[int, int] = TickBatcher(recorder.double)
    gate = LingerGate(GATE_SECONDS)
    loop = asyncio.get_running_loop()
    went_on: dict[int, float] = {}
    finish = asyncio.Event()

    async def caller(n: int) -> int:
        async with gate.passage():
            went_on[n] = loop.time()
            result = await batcher.submit(n)
            await finish.wait()  # still inside when the next ones come
            return result

    callers = [asyncio.create_task(caller(0))]
    arrived = loop.time()
    for n in (1, 2, 3):
        await asyncio.sleep(0.02)
        callers.append(asyncio.create_task(caller(n)))
    await asyncio.sleep(GATE_SECONDS + 0.1)
    finish.set()
    assert await asyncio.gather(*callers) == [0, 2, 4, 6]
    assert recorder.calls == [[0], [1, 2, 3]]
    assert went_on[0] - arrived < GATE_SECONDS / 2  # nobody came before it: at once
    assert max(went_on[1], went_on[2], went_on[3]) - min(went_on[1], went_on[2], went_on[3]) < 0.01
    assert GATE_SECONDS <= went_on[1] - arrived < GATE_SECONDS + 1.0  # the gate's opener waited it out


async def test_a_caller_after_a_quiet_spell_goes_on_at_once() -> None:
    gate = LingerGate(GATE_SECONDS)
    loop = asyncio.get_running_loop()
    holder = asyncio.Event()

    async def inside() -> None:
        async with gate.passage():
            await holder.wait()

    first = asyncio.create_task(inside())  # still inside: only the time since it came decides
    await asyncio.sleep(GATE_SECONDS * 1.5)
    started = loop.time()
    async with gate.passage():
        assert loop.time() - started < GATE_SECONDS / 2
    holder.set()
    await first


async def test_one_request_after_the_others_answer_goes_on_at_once() -> None:
    """A client sending each request once the one before was answered: close together, but nobody else inside."""
    gate = LingerGate(GATE_SECONDS)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(5):
        async with gate.passage():
            await asyncio.sleep(0.01)
    assert loop.time() - started < GATE_SECONDS


async def test_a_cancelled_caller_does_not_release_the_others_early() -> None:
    gate = LingerGate(GATE_SECONDS)
    holder = asyncio.Event()

    async def inside() -> None:
        async with gate.passage():
            await holder.wait()

    first = asyncio.create_task(inside())
    await asyncio.sleep(0.01)
    opener, joiner = asyncio.create_task(inside()), asyncio.create_task(inside())
    await asyncio.sleep(0.02)
    opener.cancel()
    await asyncio.sleep(0.02)
    holder.set()
    await asyncio.sleep(0.02)
    assert not joiner.done()  # still at the gate, which the cancelled opener did not close
    await asyncio.wait_for(joiner, GATE_SECONDS + 1.0)
    await first
    with pytest.raises(asyncio.CancelledError):
        await opener


async def test_a_gate_of_no_time_never_holds_anyone() -> None:
    gate = LingerGate(0)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def caller() -> None:
        async with gate.passage():
            await asyncio.sleep(0.01)

    await asyncio.gather(*(caller() for _ in range(5)))
    assert loop.time() - started < GATE_SECONDS / 2
