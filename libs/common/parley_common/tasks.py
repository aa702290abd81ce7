"""Background work tied to the life of a context: started on entry, cancelled and awaited on exit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def running(*work: Coroutine[Any, Any, Any]) -> AsyncIterator[tuple[asyncio.Task[Any], ...]]:
    """Run each coroutine of `work` as a task while inside; on exit cancel them and wait until every one has
    finished, so none outlives its owner (still writing, or holding a connection, after a shutdown). A task that
    failed before the exit raises its error there, unless the body is raising one of its own; a task that ended
    by itself is fine. A cancellation of the exit itself is passed on, not swallowed."""
    tasks = tuple(asyncio.create_task(coroutine) for coroutine in work)
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    if failures:
        raise failures[0]
