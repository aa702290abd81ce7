"""Load shedding at a service's door: at most so many requests of a kind in flight in this process, one more
answered 503 `overloaded` at once (with Retry-After), before anything is read, stored or published. Above the rate
a process sustains, requests otherwise pile up until their clients time out — a provider's webhook or an agent's
reply alike — and the pools behind them run dry; a prompt 503 sheds the load cleanly and the client retries
(a provider on its own schedule, a send with the same Idempotency-Key)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from parley_common.errors import ApiError

OVERLOADED = "overloaded: more requests of this kind in flight than the process takes at once; nothing was done"


class Admission:
    def __init__(self, limit: int, what: str) -> None:
        self._limit = limit
        self._what = what
        self._in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._in_flight >= self._limit:
            raise ApiError(503, "overloaded", f"more than {self._limit} {self._what} in flight; retry later")
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
