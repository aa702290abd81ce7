"""When a record whose handler failed is tried again, and when it is dead-lettered instead (pure policy).

A handler's failure is one of two kinds:
- **an outage**: the database, cache or broker is unreachable or timed out, or the condition is `Transient` (a lost
  race, something another delivery is storing) (`is_outage`). The record is fine and will succeed once the
  dependency answers or the race is read again, so it is tried again without limit, with a back-off, holding its
  partition in order: a database down for minutes must not turn every record of that time into a dead letter.
- **anything else** (a bug, a refusal the handler did not turn into PermanentFailure): tried `ATTEMPTS` times in
  all with a back-off, then dead-lettered with the reason `handler_failed` and the error, and the partition goes
  on. The count is kept per record by the consuming process (`FailureCounts`): a restart or a rebalance starts it
  again, so a record can be tried more often than `ATTEMPTS` across processes, never fewer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from pymongo.errors import PyMongoError

from parley_common.errors import unavailable_dependency

ATTEMPTS = 5
FIRST_PAUSE_S = 0.2
LONGEST_PAUSE_S = 5.0
GIVEN_UP = "handler_failed"
REMEMBERED_RECORDS = 10_000  # a record that moved to another consumer is forgotten after this many others
_TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError", "UnknownTransactionCommitResult")


class Transient(Exception):
    """A condition that delivering the record again resolves: another writer won a race (an optimistic save that
    lost), or what the record depends on is being stored by another delivery or has not arrived yet. Handlers
    raise a subclass to be tried again without limit (a record arriving too early gives up by itself, e.g. the
    router's commands after their patience)."""


def is_outage(error: BaseException) -> bool:
    """A dependency unreachable or too slow, or a lost race, judged by the error or any error it was raised from:
    what an HTTP request answers 503 for (parley_common.errors.unavailable_dependency: MongoDB's, Redis's and
    Kafka's connection failures and time-outs), errors MongoDB labels retryable, the standard library's
    ConnectionError / TimeoutError, and Transient."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if unavailable_dependency(current) or isinstance(current, ConnectionError | TimeoutError | Transient):
            return True
        if isinstance(current, PyMongoError) and any(current.has_error_label(label) for label in _TRANSIENT_LABELS):
            return True
        current = current.__cause__ or current.__context__
    return False


def pause_after(failures: int) -> float:
    """Seconds to wait before the next try, after `failures` failures in a row (≥ 1): from FIRST_PAUSE_S,
    doubling, at most LONGEST_PAUSE_S."""
    return min(LONGEST_PAUSE_S, FIRST_PAUSE_S * 2.0 ** min(failures - 1, 32))  # an outage may go on for ever


def gives_up(failures: int, outage: bool) -> bool:
    """Dead-letter the record now? Never during an outage; after ATTEMPTS failures of any other kind."""
    return not outage and failures >= ATTEMPTS


def describe(error: BaseException) -> str:
    """The error as a dead letter's detail: its type and message, bounded."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else f"{text[:499]}…"


class FailureCounts:
    """Failures in a row per record (any hashable key: topic, partition, offset, handler), for the records this
    process is retrying; at most REMEMBERED_RECORDS, the oldest forgotten first."""

    def __init__(self, limit: int = REMEMBERED_RECORDS) -> None:
        self._limit = limit
        self._failures: OrderedDict[Hashable, int] = OrderedDict()

    def failed(self, key: Hashable) -> int:
        """Count a failure of `key`; answers its failures in a row so far."""
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > self._limit:
            self._failures.popitem(last=False)
        return count

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)
