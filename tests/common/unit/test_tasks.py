"""parley_common.tasks.running: background work lives exactly as long as its context."""

import asyncio

import pytest

from parley_common.tasks import running


async def test_the_work_runs_inside_and_is_cancelled_and_finished_on_exit() -> None:
    ticks: list[int] = []
    cleaned: list[str] = []

    async def ticking(name: str) -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0)
        finally:
            cleaned.append(name)

    async with running(ticking("a"), ticking("b")) as tasks:
        await asyncio.sleep(0.01)
        assert ticks and not any(task.done() for task in tasks)
    assert all(task.cancelled() for task in tasks)
    assert sorted(cleaned) == ["a", "b"]  # finished, not merely told to stop


async def test_work_that_ended_by_itself_is_fine_and_keeps_its_result() -> None:
    async def answer() -> int:
        return 42

    async with running(answer()) as (task,):
        await task
    assert task.result() == 42


async def failing() -> None:
    raise LookupError("lost")


async def test_work_that_failed_raises_its_error_on_exit() -> None:
    with pytest.raises(LookupError, match="lost"):
        async with running(failing()) as (task,):
            await asyncio.wait([task])


async def test_the_bodys_own_error_is_the_one_raised() -> None:
    with pytest.raises(ValueError, match="mine"):
        async with running(failing()) as (task,):
            await asyncio.wait([task])
            raise ValueError("mine")


async def test_a_cancellation_of_the_owner_while_it_waits_on_exit_is_passed_on() -> None:
    exiting = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            exiting.set()
            await asyncio.sleep(3600)  # cleanup that takes long: the owner is cancelled meanwhile
            raise

    async def owner() -> None:
        async with running(slow_to_stop()):
            await asyncio.sleep(0)

    task = asyncio.create_task(owner())
    await exiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
