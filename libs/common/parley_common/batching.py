"""Calls made by concurrent tasks in the same event-loop turn, served by one bulk call (the DataLoader pattern).

A batch consumer handles many records at once, one task per key; each task makes the same lookups and writes
(is this message new, is the customer blocked, store the timeline entry). One `$in` query or one `bulk_write`
for all of them costs the database a fraction of as many single operations, and the per-record code stays as
simple as before: it awaits `batcher.submit(item)` as it awaited the single call.

Requests that arrive one at a time (webhooks) are in the same turn only when they arrive together; a `LingerGate`
lets those arriving close together go on together, so each `TickBatcher` of the steps they then take serves
them with one call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
BulkCall = Callable[[list[Item]], Awaitable[Sequence[Result | BaseException]]]


class TickBatcher(Generic[Item, Result]):
    """`bulk(items)` returns one result per item, in order; an exception in that list fails only its item, an
    exception raised by `bulk` fails every item of the call."""

    def __init__(self, bulk: BulkCall[Item, Result], max_items: int = 500) -> None:
        self._bulk = bulk
        self._max = max_items
        self._items: list[Item] = []
        self._futures: list[asyncio.Future[Result]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        if not self._items:
            loop.call_soon(self._flush)  # runs after every task already ready in this turn made its call
        future: asyncio.Future[Result] = loop.create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._items) >= self._max:
            self._flush()
        try:
            return await asyncio.shield(future)  # a cancelled caller must not cancel the shared call
        except asyncio.CancelledError:
            future.add_done_callback(_outcome_unwanted)  # its failure is nobody's to raise now
            raise

    def _flush(self) -> None:
        if not self._items:
            return
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        task = asyncio.create_task(self._run(items, futures))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[Item], futures: list[asyncio.Future[Result]]) -> None:
        try:
            results = await self._bulk(items)
        except Exception as exc:  # noqa: BLE001 - handed to each caller, who decides (retry, redelivery)
            for future in futures:
                future.set_exception(exc)
            return
        for future, result in zip(futures, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


class LingerGate:
    """Holds callers that come close together so they go on together, in one event-loop turn: a caller entering
    within `seconds` of the one before, while another is still inside, opens a gate for `seconds` (or joins the gate
    open), and all its callers go on when it closes; any other caller goes on at once — after a quieter spell, or
    from a client sending one request after the other's answer, nobody would join it. So a steady stream makes
    groups — at one caller per 10 ms and 25 ms, two or three — whose every step is one shared call. Each caller
    waits at most `seconds`."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._inside = 0
        self._last_arrival: float | None = None
        self._open: asyncio.Future[None] | None = None

    @asynccontextmanager
    async def passage(self) -> AsyncIterator[None]:
        """Inside from the arrival (the wait included) to the end of the block."""
        self._inside += 1
        try:
            await self._wait()
            yield
        finally:
            self._inside -= 1

    async def _wait(self) -> None:
        if self._seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        now, previous = loop.time(), self._last_arrival
        self._last_arrival = now
        if self._open is None:
            if self._inside == 1 or previous is None or now - previous >= self._seconds:
                return
            self._open = loop.create_future()
            loop.call_later(self._seconds, self._close)
        await asyncio.shield(self._open)  # a cancelled caller must not release the others early

    def _close(self) -> None:
        gate, self._open = self._open, None
        if gate is not None:
            gate.set_result(None)


def _outcome_unwanted(future: asyncio.Future[Any]) -> None:
    """Retrieve a shared call's outcome whose caller was cancelled, so a failure is not logged as an exception
    nobody retrieved (asyncio's "Future exception was never retrieved")."""
    if not future.cancelled():
        future.exception()
