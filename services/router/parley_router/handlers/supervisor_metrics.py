"""The supervisors' floor as Prometheus gauges (on every replica's /metrics), set whenever a floor is computed:
by `GET /v1/supervisor/now` and every `PARLEY_ROUTER_SUPERVISOR_METRICS_INTERVAL_SECONDS` for tenants with agents
online. Label sets that are gone (an emptied queue, a removed agent) are dropped."""

from __future__ import annotations

from typing import Any

from prometheus_client import Gauge

QUEUED = Gauge("parley_router_queued_conversations", "Conversations waiting, per team and channel type",
               ["tenant", "team", "channel_type"])
LONGEST_WAIT = Gauge("parley_router_longest_wait_seconds", "Longest wait in the queue, per team and channel type",
                     ["tenant", "team", "channel_type"])
AGENTS = Gauge("parley_router_agents", "Agents per team by state (online, away, offline, at_capacity)",
               ["tenant", "team", "state"])
AGENT_CONVERSATIONS = Gauge("parley_router_agent_conversations", "Conversations an agent holds", ["tenant", "agent"])
_shown: dict[str, set[tuple[Gauge, tuple[str, ...]]]] = {}  # tenant → the label sets it set last time


def export_floor(tenant_id: str, view: dict[str, Any]) -> None:
    shown: set[tuple[Gauge, tuple[str, ...]]] = set()

    def put(gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        gauge.labels(*labels).set(value)
        shown.add((gauge, labels))

    for queue in view["queues"]:
        where = (tenant_id, queue["team_id"] or "", queue["channel_type"])
        put(QUEUED, where, queue["queued"])
        put(LONGEST_WAIT, where, queue["longest_wait_seconds"])
    for team in view["teams"]:
        for state in ("online", "away", "offline", "at_capacity"):
            put(AGENTS, (tenant_id, team["team_id"], state), team[state])
    for agent in view["agents"]:
        put(AGENT_CONVERSATIONS, (tenant_id, agent["login"]), agent["conversations"])
    for gauge, labels in _shown.get(tenant_id, set()) - shown:
        gauge.remove(*labels)
    _shown[tenant_id] = shown
