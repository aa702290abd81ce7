"""A fact another service's event puts in a projection here may be a moment behind what the caller was just told
(media answered an upload, the router an accept): read it again until it settles, up to a bound."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
CATCH_UP_POLL_SECONDS = 0.1


async def read_soon(read: Callable[[], Awaitable[T]], settled: Callable[[T], bool], within: float) -> T:
    """`read()`, read again every CATCH_UP_POLL_SECONDS while `settled` says no, for at most `within` seconds;
    the last read either way."""
    deadline = time.monotonic() + within
    value = await read()
    for _ in range(math.ceil(within / CATCH_UP_POLL_SECONDS)):
        if settled(value) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(CATCH_UP_POLL_SECONDS)  # another service's event: nothing here to wait on
        value = await read()
    return value
