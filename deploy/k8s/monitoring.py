"""What the Prometheus Operator and Grafana get: the ServiceMonitor, the PrometheusRule alerts, and the Grafana
dashboard (a ConfigMap the Grafana sidecar loads). Generated into base/ by generate.py; validate.py parses every
expression (promql-parser) and checks each metric it names is one the services export.

`PROMETHEUS_SELECTOR` is the label your Prometheus selects ServiceMonitors and PrometheusRules by
(`serviceMonitorSelector`, `ruleSelector`; kube-prometheus-stack: `release: <its Helm release>`); an overlay
patches it (overlays/production/patches/prometheus-selector.yaml)."""

from __future__ import annotations

import json
from typing import Any

PROMETHEUS_SELECTOR = {"release": "kube-prometheus-stack"}
DASHBOARD_FILE = "grafana-dashboard.json"
LAG = "sum by (service, topic, group) (parley_consumer_lag_records)"
RUNBOOK = "docs/operations.md#alerts"  # in the repository of the release you deploy

# (alert, expression, for, severity, summary). Thresholds are starting points: tune them to your traffic.
ALERTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("ParleyConsumerLagGrowing",
     f"{LAG} > 500 and deriv(({LAG})[15m:1m]) > 0", "15m", "warning",
     "{{ $labels.service }} falls behind on {{ $labels.topic }} (group {{ $labels.group }}): "
     "{{ $value }} records waiting and growing for 15 minutes"),
    ("ParleyConsumerStalled",
     f"{LAG} > 0 and sum by (service, topic) (rate(parley_consumer_records_total[10m])) == 0", "10m", "critical",
     "{{ $labels.service }} has records waiting on {{ $labels.topic }} and handled none for 10 minutes"),
    ("ParleyDeadLetters",
     "sum by (service, topic, reason) (rate(parley_dead_letters_total[10m])) * 60 > 1", "10m", "warning",
     "{{ $labels.service }} dead-letters {{ $value }} records a minute from {{ $labels.topic }} "
     "({{ $labels.reason }}): `parley dlq list --reason {{ $labels.reason }}`"),
    ("ParleyHandlerFailures",
     'sum by (service, topic) (rate(parley_consumer_records_total{outcome="failed"}[5m])) '
     "/ sum by (service, topic) (rate(parley_consumer_records_total[5m])) > 0.05", "10m", "critical",
     "{{ $labels.service }}: more than 5 % of {{ $labels.topic }}'s records fail and come again"),
    ("ParleyHttpErrors",
     'sum by (service) (rate(parley_http_requests_total{status=~"5.."}[5m])) '
     "/ sum by (service) (rate(parley_http_requests_total[5m])) > 0.02", "10m", "critical",
     "{{ $labels.service }} answers more than 2 % of its requests with a 5xx"),
    ("ParleyNotReady",
     "min by (service, check) (parley_readiness_check) == 0", "5m", "critical",
     "{{ $labels.service }}: its {{ $labels.check }} check fails on at least one pod (not ready: no traffic)"),
    ("ParleyTargetDown",
     'up{job=~"parley-.+"} == 0', "5m", "critical",
     "Prometheus cannot scrape {{ $labels.job }} on {{ $labels.pod }}"),
    ("ParleyOutboundSendFailures",
     'sum by (channel_type, reason) (rate(parley_outbound_messages_total{state="failed"}[15m])) * 60 > 1', "15m",
     "warning", "outbound: {{ $value }} {{ $labels.channel_type }} sends a minute fail ({{ $labels.reason }})"),
)


def service_monitor() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "parley", "labels": dict(PROMETHEUS_SELECTOR)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/part-of": "parley"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}],
        },
    }


def prometheus_rule() -> dict[str, Any]:
    rules = [
        {
            "alert": name,
            "expr": expr,
            "for": duration,
            "labels": {"severity": severity, "team": "parley"},
            "annotations": {"summary": summary, "runbook": RUNBOOK},
        }
        for name, expr, duration, severity, summary in ALERTS
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "parley", "labels": dict(PROMETHEUS_SELECTOR)},
        "spec": {"groups": [{"name": "parley", "rules": rules}]},
    }


# (title, unit, [(query, legend)]); the dashboard lays them out two to a row.
PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Consumer lag (records)", "short", ((LAG, "{{service}} {{topic}}"),)),
    ("Records handled by outcome (/s)", "ops",
     (("sum by (service, outcome) (rate(parley_consumer_records_total[5m]))", "{{service}} {{outcome}}"),)),
    ("Handler time p95 per topic", "s",
     (("histogram_quantile(0.95, sum by (le, service, topic) (rate(parley_consumer_handler_seconds_bucket[5m])))",
       "{{service}} {{topic}}"),)),
    ("Dead letters by reason (/min)", "short",
     (("sum by (service, reason) (rate(parley_dead_letters_total[5m])) * 60", "{{service}} {{reason}}"),)),
    ("HTTP requests by status (/s)", "reqps",
     (("sum by (service, status) (rate(parley_http_requests_total[5m]))", "{{service}} {{status}}"),)),
    ("HTTP time p95 per route", "s",
     (("histogram_quantile(0.95, sum by (le, service, route) (rate(parley_http_request_seconds_bucket[5m])))",
       "{{service}} {{route}}"),)),
    ("MongoDB command time p95", "s",
     (("histogram_quantile(0.95, sum by (le, service, command) (rate(parley_mongodb_command_seconds_bucket[5m])))",
       "{{service}} {{command}}"),)),
    ("Redis command time p95", "s",
     (("histogram_quantile(0.95, sum by (le, service, command) (rate(parley_redis_command_seconds_bucket[5m])))",
       "{{service}} {{command}}"),)),
    ("Webhooks by outcome (/s)", "reqps",
     (("sum by (channel_type, outcome) (rate(parley_ingest_requests_total[5m]))", "{{channel_type}} {{outcome}}"),)),
    ("Outbound messages by state (/min)", "short",
     (("sum by (channel_type, state) (rate(parley_outbound_messages_total[5m])) * 60", "{{channel_type}} {{state}}"),)),
    ("Window refusals by reason (/min)", "short",
     (("sum by (channel_type, reason) (rate(parley_outbound_window_refusals_total[5m])) * 60",
       "{{channel_type}} {{reason}}"),)),
    ("Media states (/min)", "short",
     (("sum by (state, reason) (rate(parley_media_states_total[5m])) * 60", "{{state}} {{reason}}"),)),
    ("Queued conversations", "short",
     (("sum by (tenant, team) (parley_router_queued_conversations)", "{{tenant}} {{team}}"),)),
    ("Readiness checks failing", "short",
     (("count by (service, check) (parley_readiness_check == 0)", "{{service}} {{check}}"),)),
)


def dashboard() -> dict[str, Any]:
    panels = []
    for number, (title, unit, queries) in enumerate(PANELS):
        panels.append({
            "id": number + 1,
            "type": "timeseries",
            "title": title,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (number % 2), "y": 8 * (number // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + index), "expr": query, "legendFormat": legend,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for index, (query, legend) in enumerate(queries)],
        })
    return {
        "uid": "parley-overview",
        "title": "Parley",
        "tags": ["parley"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus"}]},
        "panels": panels,
    }


def dashboard_text() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def expressions() -> list[str]:
    """Every PromQL expression of the alerts and the dashboard."""
    return [expr for _, expr, *_ in ALERTS] + [query for _, _, queries in PANELS for query, _ in queries]
