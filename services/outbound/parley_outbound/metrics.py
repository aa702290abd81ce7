"""Prometheus metrics of outbound (served at /metrics with the common ones of parley_common.metrics)."""

from __future__ import annotations

from prometheus_client import Counter

MESSAGES = Counter("parley_outbound_messages_total",
                   "Outbound messages reaching a state (sent, delivered, read, failed, refused, queued), by reason",
                   ["channel_type", "state", "reason"])
WINDOW_REFUSALS = Counter("parley_outbound_window_refusals_total",
                          "Sends the channel's window policy refused, by reason (window_closed, not_subscribed…)",
                          ["channel_type", "reason"])
