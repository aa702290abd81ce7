"""What supervisors see: the floor now (queues per team and channel, agents per team by state, conversations per
agent) and figures of a period (first response and wait times, opened / closed, per agent and team). Pure."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parley_router.domain.assignment import Agent, Presence
from parley_router.domain.conversation import Conversation

NO_TEAM = "-"


def percentile(values: list[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least `share` of the values at or below it (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def at_capacity(agent: Agent) -> bool:
    """No room left on a channel type the agent holds conversations on."""
    return any(count and count >= agent.max_for(channel) for channel, count in agent.active)


def floor_now(queued: Iterable[Conversation], agents: Iterable[Agent], now: datetime) -> dict[str, Any]:
    """`agents` with their live presence and active counts; `queued` the tenant's waiting conversations."""
    queues: dict[tuple[str, str], dict[str, Any]] = {}
    for conv in queued:
        queue = queues.setdefault((conv.team_id or NO_TEAM, conv.channel_type),
                                  {"team_id": conv.team_id, "channel_type": conv.channel_type, "queued": 0,
                                   "longest_wait_seconds": 0.0})
        queue["queued"] += 1
        waited = (now - (conv.waiting_since or conv.opened_at)).total_seconds()
        queue["longest_wait_seconds"] = max(queue["longest_wait_seconds"], round(waited, 3))
    teams: dict[str, dict[str, int]] = defaultdict(lambda: {"online": 0, "away": 0, "offline": 0,
                                                            "at_capacity": 0})
    per_agent = []
    for agent in agents:
        for team in agent.teams or {NO_TEAM}:
            teams[team][agent.presence.value] += 1
            teams[team]["at_capacity"] += agent.presence is Presence.ONLINE and at_capacity(agent)
        per_agent.append({"login": agent.login, "teams": sorted(agent.teams), "presence": agent.presence.value,
                          "at_capacity": at_capacity(agent), "conversations": agent.total_active,
                          "per_channel": {channel: count for channel, count in agent.active if count}})
    return {"at": now.isoformat(), "queues": sorted(queues.values(), key=lambda q: (q["team_id"] or "",
                                                                                    q["channel_type"])),
            "teams": [{"team_id": team, **states} for team, states in sorted(teams.items())],
            "agents": sorted(per_agent, key=lambda a: a["login"])}


@dataclass
class _Figures:
    opened: int = 0
    closed: int = 0
    first_response: list[float] = field(default_factory=list)
    wait: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"opened": self.opened, "closed": self.closed,
                "first_response_seconds": _spread(self.first_response), "wait_seconds": _spread(self.wait)}


def _spread(values: list[float]) -> dict[str, float | int | None]:
    return {"count": len(values), "median": percentile(values, 0.5), "p90": percentile(values, 0.9)}


class PeriodFigures:
    """Figures of a period, fed one conversation at a time (a day of a large tenant is never held at once).

    `opened`: conversations opened in the period (first response: opened → first reply; wait: opened → first
    held by an agent); `closed`: those closed in it. Per agent = the conversation's agent (who holds or closed
    it); per team = its team."""

    def __init__(self) -> None:
        self.total = _Figures()
        self.agents: defaultdict[str, _Figures] = defaultdict(_Figures)
        self.teams: defaultdict[str, _Figures] = defaultdict(_Figures)

    def _groups(self, conv: Conversation) -> list[_Figures]:
        return [self.total, self.teams[conv.team_id or NO_TEAM], *([self.agents[conv.agent]] if conv.agent else [])]

    def opened(self, conv: Conversation) -> None:
        for figures in self._groups(conv):
            figures.opened += 1
            if conv.first_response_seconds is not None:
                figures.first_response.append(conv.first_response_seconds)
            if conv.first_assigned_at is not None:
                figures.wait.append((conv.first_assigned_at - conv.opened_at).total_seconds())

    def closed(self, conv: Conversation) -> None:
        for figures in self._groups(conv):
            figures.closed += 1

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total.as_dict(),
                "teams": [{"team_id": team, **figures.as_dict()} for team, figures in sorted(self.teams.items())],
                "agents": [{"login": login, **figures.as_dict()} for login, figures in sorted(self.agents.items())]}
