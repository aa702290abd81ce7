"""Prometheus metrics of media (served at /metrics with the common ones of parley_common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

STATES = Counter("parley_media_states_total", "Media records reaching a state (stored, failed, expired), by reason",
                 ["state", "reason"])
