"""When to try a failed download again, and when to give up."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 5.0
    max_seconds: float = 600.0
    max_attempts: int = 6

    def delay(self, attempt: int) -> float:
        """Delay before attempt number `attempt + 1` (attempt 1 is the first download)."""
        return float(min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1)))

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


# Provider HTTP statuses worth retrying: a moment later, a new URL, or a recovered server may work.
RETRYABLE_STATUS = frozenset({404, 408, 409, 425, 429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500
