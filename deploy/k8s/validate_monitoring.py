"""Offline checks of the alerts and the dashboard (monitoring.py), run by validate.py (`make manifests`): every
expression parses as PromQL (promql-parser, the Rust parser of GreptimeDB's PromQL engine), every alert's `for` is
a duration, and every metric an expression names is one the services export — read from the Prometheus registry
after importing every service's metrics — or one of the cluster's own (`up`). tests/e2e/test_metrics.py checks
the same names against what the running services really serve."""

from __future__ import annotations

import importlib
from typing import Any

import promql_parser
from monitoring import ALERTS, expressions
from prometheus_client import REGISTRY

METRIC_MODULES = ("parley_common.metrics", "parley_common.health", "parley_common.round_trips",
                  "parley_ingest.metrics", "parley_outbound.metrics", "parley_media.metrics",
                  "parley_router.handlers.supervisor_metrics", "parley_console.handlers.proxy")
CLUSTER_METRICS = frozenset({"up"})  # Prometheus's own, per target


def metric_names(expr: str) -> set[str]:
    """Names of every series selector in a PromQL expression (raises ValueError when it does not parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            return
        for attribute in ("expr", "lhs", "rhs", "param", "vector_selector"):
            child = getattr(node, attribute, None)
            if child is not None and not isinstance(child, (str, int, float)):
                visit(child)
        for argument in getattr(node, "args", None) or ():
            visit(argument)

    visit(promql_parser.parse(expr))
    return names


def exported_metric_names() -> set[str]:
    """Every sample name the services can serve (counters with _total, histograms with _bucket/_count/_sum)."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                    "summary": ("_count", "_sum", "_created")}.get(family.type, ())
        names |= {family.name + suffix for suffix in suffixes}
    return names


def problems() -> list[str]:
    found = []
    exported = exported_metric_names() | CLUSTER_METRICS
    for expr in expressions():
        try:
            unknown = metric_names(expr) - exported
        except ValueError as exc:
            found.append(f"does not parse: {expr}: {exc}")
            continue
        found += [f"names {name}, which no service exports: {expr}" for name in sorted(unknown)]
    for name, _, duration, *_ in ALERTS:
        try:
            promql_parser.parse_duration(duration)
        except ValueError as exc:
            found.append(f"{name}: bad `for` {duration}: {exc}")
    return found
