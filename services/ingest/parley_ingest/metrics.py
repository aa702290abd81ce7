"""Prometheus metrics of ingest (served at /metrics by the common service shell)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("parley_ingest_requests_total", "Webhook requests by channel type and outcome",
                   ["channel_type", "outcome"])
EVENTS_PUBLISHED = Counter("parley_ingest_events_published_total", "Events acknowledged by Kafka",
                           ["channel_type", "topic"])
DUPLICATES = Counter("parley_ingest_duplicates_dropped_total", "Provider retries dropped by de-duplication",
                     ["channel_type"])
SIGNATURE_FAILURES = Counter("parley_ingest_signature_failures_total", "Webhooks with a missing or wrong signature",
                             ["channel_type"])
DEAD_LETTERED = Counter("parley_ingest_dead_lettered_total", "Provider items sent to the dead-letter topic",
                        ["channel_type", "reason"])
PUBLISH_SECONDS = Histogram("parley_ingest_publish_seconds", "Time until Kafka acknowledged a request's events",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
