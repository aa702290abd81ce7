"""Calls made by concurrent tasks in the same event-loop turn, served by one bulk call (the DataLoader pattern).

A batch consumer handles many records at once, one task per key; each task makes the same lookups and writes
(is this message new, is the customer blocked, store the timeline entry). One `$in` query or one `bulk_write`
for all of them costs the database a fraction of as many single operations, and the per-record code stays as
simple as before: it awaits `batcher.submit(item)` as it awaited the single call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
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


def _outcome_unwanted(future: asyncio.Future[Any]) -> None:
    """Retrieve a shared call's outcome whose caller was cancelled, so a failure is not logged as an exception
    nobody retrieved (asyncio's "Future exception was never retrieved")."""
    if not future.cancelled():
        future.exception()
