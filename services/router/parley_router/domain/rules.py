"""Routing rules: per tenant, evaluated in order, the first whose conditions all hold decides the target."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

from parley_router.domain.conversation import Assignee, AssigneeKind


@dataclass(frozen=True)
class BusinessHours:
    """Open on `weekdays` (0 = Monday) from `opens` to `closes` in `timezone`."""

    timezone: str = "UTC"
    weekdays: frozenset[int] = frozenset(range(5))
    opens: time = time(9)
    closes: time = time(18)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        return local.weekday() in self.weekdays and self.opens <= local.time() < self.closes


@dataclass(frozen=True)
class Conditions:
    """All given conditions must hold; an empty `Conditions` matches everything."""

    channel_types: frozenset[str] = frozenset()
    channel_ids: frozenset[str] = frozenset()
    labels_any: frozenset[str] = frozenset()
    keywords_any: tuple[str, ...] = ()
    languages: frozenset[str] = frozenset()
    custom_fields: tuple[tuple[str, str], ...] = ()
    within_business_hours: bool | None = None  # True: only inside, False: only outside, None: any time


@dataclass(frozen=True)
class Rule:
    id: str
    target: Assignee
    conditions: Conditions = field(default_factory=Conditions)
    sticky: bool = False  # prefer the agent who last served this customer, when available
    bot_timeout_seconds: int | None = None  # a bot target: how long it may leave the customer unanswered
    fallback_team: str | None = None  # a bot target: the team that takes over when it does not answer in time


@dataclass(frozen=True)
class Facts:
    """What a rule can look at about a new conversation."""

    channel_type: str
    channel_id: str
    text: str = ""
    labels: frozenset[str] = frozenset()
    language: str | None = None
    custom_fields: tuple[tuple[str, str], ...] = ()


def matches(conditions: Conditions, facts: Facts, now: datetime, hours: BusinessHours | None) -> bool:
    checks = (
        not conditions.channel_types or facts.channel_type in conditions.channel_types,
        not conditions.channel_ids or facts.channel_id in conditions.channel_ids,
        not conditions.labels_any or bool(conditions.labels_any & facts.labels),
        not conditions.keywords_any or _has_keyword(facts.text, conditions.keywords_any),
        not conditions.languages or (facts.language or "") in conditions.languages,
        all(pair in facts.custom_fields for pair in conditions.custom_fields),
        _hours_hold(conditions.within_business_hours, now, hours),
    )
    return all(checks)


def _has_keyword(text: str, keywords: tuple[str, ...]) -> bool:
    lowered = text.casefold()
    return any(keyword.casefold() in lowered for keyword in keywords)


def _hours_hold(wanted: bool | None, now: datetime, hours: BusinessHours | None) -> bool:
    if wanted is None:
        return True
    is_open = (hours or BusinessHours()).is_open(now)
    return is_open is wanted


def first_match(rules: tuple[Rule, ...], facts: Facts, now: datetime,
                hours: BusinessHours | None = None) -> Rule | None:
    return next((rule for rule in rules if matches(rule.conditions, facts, now, hours)), None)


DEFAULT_TARGET = Assignee(AssigneeKind.TEAM, "default")
