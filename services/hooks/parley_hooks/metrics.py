"""Prometheus metrics of the hooks service (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENQUEUED = Counter("parley_hooks_deliveries_enqueued_total", "Deliveries queued for subscriptions (new events)")
ATTEMPTS = Counter("parley_hooks_delivery_attempts_total", "Delivery attempts by outcome",
                   ["outcome"])  # delivered, or the error: http_5xx grouped, timeout, connection_failed, …
ATTEMPT_SECONDS = Histogram("parley_hooks_delivery_attempt_seconds", "Time of one delivery attempt",
                            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PAUSES = Counter("parley_hooks_subscriptions_paused_total", "Subscriptions paused, by reason", ["reason"])


def outcome_label(error: str | None) -> str:
    """Bounded label values: `http_503` → `http_5xx`, so a receiver's odd statuses cannot grow the series."""
    if error is None:
        return "delivered"
    if error.startswith("http_") and error[5:].isdigit():
        return f"http_{error[5]}xx"
    return error
