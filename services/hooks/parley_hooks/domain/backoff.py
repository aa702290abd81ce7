"""When a failed delivery is tried again, and when a subscription is paused instead."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 2.0
    max_seconds: float = 600.0
    pause_after_failures: int = 12

    def delay(self, failures: int, jitter: float) -> float:
        """Exponential (base * 2^(failures-1)), capped, and "equal jitter": somewhere between half and all of it,
        `jitter` in [0, 1) drawn by the caller, so receivers coming back are not hit by every subscription at
        once while the wait still grows."""
        ceiling = min(self.max_seconds, self.base_seconds * float(2 ** min(max(failures - 1, 0), 62)))
        return ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)

    def pauses(self, failures: int) -> bool:
        """A delivery failing this many times in a row pauses its subscription: its receiver is down for good."""
        return failures >= self.pause_after_failures
