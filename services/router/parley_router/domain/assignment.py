"""Who gets a conversation: eligible agents (online, free capacity on the channel, in the team / with the
skill), team strategies (manual, round robin, least busy), sticky agents, and the queue order."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from parley_router.domain.conversation import Assignee, AssigneeKind


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class Strategy(StrEnum):
    MANUAL = "manual"
    ROUND_ROBIN = "round_robin"
    LEAST_BUSY = "least_busy"


DEFAULT_CAPACITY = 5


@dataclass(frozen=True)
class Agent:
    login: str
    teams: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    capacity: tuple[tuple[str, int], ...] = ()  # (channel type, max active); others use default_capacity
    default_capacity: int = DEFAULT_CAPACITY
    presence: Presence = Presence.OFFLINE
    active: tuple[tuple[str, int], ...] = ()  # (channel type, active conversations)

    def max_for(self, channel_type: str) -> int:
        return dict(self.capacity).get(channel_type, self.default_capacity)

    def active_on(self, channel_type: str) -> int:
        return dict(self.active).get(channel_type, 0)

    @property
    def total_active(self) -> int:
        return sum(count for _, count in self.active)

    def has_room(self, channel_type: str) -> bool:
        return self.active_on(channel_type) < self.max_for(channel_type)

    def can_take(self, channel_type: str) -> bool:
        return self.presence is Presence.ONLINE and self.has_room(channel_type)

    def took(self, channel_type: str) -> Agent:
        counts = dict(self.active)
        counts[channel_type] = counts.get(channel_type, 0) + 1
        return replace(self, active=tuple(sorted(counts.items())))


@dataclass(frozen=True)
class Team:
    id: str
    strategy: Strategy = Strategy.ROUND_ROBIN
    offer_timeout_seconds: int = 300
    members: frozenset[str] = frozenset()
    requeue_on_offline: bool = False  # an agent going offline returns their accepted conversations too


@dataclass(frozen=True)
class Waiting:
    """A queued conversation as the queue sees it."""

    conversation_id: str
    channel_type: str
    target: Assignee
    priority: int
    waiting_since: datetime
    sticky_agent: str | None = None


def queue_order(entries: list[Waiting]) -> list[Waiting]:
    """Highest priority first, then longest waiting; the id breaks ties so the order is total."""
    return sorted(entries, key=lambda w: (-w.priority, w.waiting_since, w.conversation_id))


def in_scope(agent: Agent, target: Assignee) -> bool:
    if target.kind is AssigneeKind.TEAM:
        return target.id in agent.teams
    if target.kind is AssigneeKind.SKILL:
        return target.id in agent.skills
    if target.kind is AssigneeKind.AGENT:
        return agent.login == target.id
    return False


def could_serve(agent: Agent, queue: list[Waiting]) -> bool:
    """Whether the agent is a candidate for any of these conversations (presence and capacity aside): the
    dispatcher reads live state only for these."""
    return any(in_scope(agent, waiting.target) or agent.login == waiting.sticky_agent for waiting in queue)


def eligible(agents: list[Agent], target: Assignee, channel_type: str) -> list[Agent]:
    return [agent for agent in agents if in_scope(agent, target) and agent.can_take(channel_type)]


def choose(candidates: list[Agent], strategy: Strategy, last_login: str | None,
           channel_type: str) -> Agent | None:
    """`last_login`: the agent who got the previous round-robin conversation of this team."""
    if not candidates or strategy is Strategy.MANUAL:
        return None
    ordered = sorted(candidates, key=lambda agent: agent.login)
    if strategy is Strategy.LEAST_BUSY:
        return min(ordered, key=lambda agent: (agent.active_on(channel_type), agent.total_active))
    after = [agent for agent in ordered if last_login is not None and agent.login > last_login]
    return (after or ordered)[0]


def pick_agent(waiting: Waiting, agents: list[Agent], team: Team | None, last_login: str | None) -> Agent | None:
    """Sticky agent first (when online with room), then the team's or skill's strategy; an explicit agent
    target only ever goes to that agent."""
    if waiting.sticky_agent:
        sticky = eligible(agents, Assignee(AssigneeKind.AGENT, waiting.sticky_agent), waiting.channel_type)
        if sticky and (team is None or waiting.target.kind is not AssigneeKind.TEAM
                       or waiting.target.id in sticky[0].teams):
            return sticky[0]
    candidates = eligible(agents, waiting.target, waiting.channel_type)
    if waiting.target.kind is AssigneeKind.AGENT:
        return candidates[0] if candidates else None
    strategy = team.strategy if team is not None else Strategy.LEAST_BUSY
    return choose(candidates, strategy, last_login, waiting.channel_type)


@dataclass
class Plan:
    """Result of draining a queue: who gets what, and what still waits (in queue order)."""

    assignments: list[tuple[str, str]] = field(default_factory=list)  # (conversation id, agent login)
    still_waiting: list[Waiting] = field(default_factory=list)


def drain(queue: list[Waiting], agents: list[Agent], teams: dict[str, Team],
          cursors: dict[str, str] | None = None) -> Plan:
    """Hand queued conversations to agents in queue order, never over capacity, each conversation once.
    `cursors` (team id → last round-robin login) is updated in place."""
    cursors = cursors if cursors is not None else {}
    by_login = {agent.login: agent for agent in agents}
    plan = Plan()
    for waiting in queue_order(queue):
        team = teams.get(waiting.target.id) if waiting.target.kind is AssigneeKind.TEAM else None
        agent = pick_agent(waiting, list(by_login.values()), team, cursors.get(waiting.target.id))
        if agent is None:
            plan.still_waiting.append(waiting)
            continue
        by_login[agent.login] = agent.took(waiting.channel_type)
        cursors[waiting.target.id] = agent.login
        plan.assignments.append((waiting.conversation_id, agent.login))
    return plan
