"""Bots: which bot a new conversation goes to (the first matching routing rule, else the channel's default bot
`bot_id`), how long the bot may leave the customer's message unanswered, and who takes over when it does not
answer in time (the rule's or the channel's fallback team, else `default`). Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status
from parley_router.domain.rules import DEFAULT_TARGET, Rule

DEFAULT_FALLBACK_TEAM = "default"


@dataclass(frozen=True)
class ChannelBot:
    """A channel's default bot (the channel file's `bot_id`, `bot_timeout_seconds`, `bot_fallback_team`)."""

    bot_id: str
    timeout_seconds: int | None = None
    fallback_team: str | None = None


@dataclass(frozen=True)
class Route:
    target: Assignee
    comment: str  # why: shown with the `opened` event
    rule: Rule | None = None
    bot_timeout_seconds: int | None = None
    fallback_team: str | None = None


def route_of(rule: Rule | None, channel_bot: ChannelBot | None) -> Route:
    """A matching rule decides; with none, the channel's bot; else the default team."""
    if rule is not None:
        return Route(rule.target, f"rule {rule.id}", rule, rule.bot_timeout_seconds, rule.fallback_team)
    if channel_bot is not None:
        return Route(Assignee(AssigneeKind.BOT, channel_bot.bot_id), "channel's bot", None,
                     channel_bot.timeout_seconds, channel_bot.fallback_team)
    return Route(DEFAULT_TARGET, "default route")


def hand_to_bot(conv: Conversation, route: Route, now: datetime) -> Conversation:
    """A new conversation given to the route's bot: its fallback team is the conversation's team (its agents see
    it while the bot talks, and its queue takes it over), and the customer's first message starts the clock."""
    conv = replace(conv, team_id=route.fallback_team or conv.team_id or DEFAULT_FALLBACK_TEAM,
                   bot_timeout_seconds=route.bot_timeout_seconds)
    return conv_rules.assign(conv, route.target, now)


def is_overdue(conv: Conversation, now: datetime) -> bool:
    return conv.status is Status.BOT and conv.bot_reply_due is not None and conv.bot_reply_due <= now


def fall_back(conv: Conversation, now: datetime) -> Conversation:
    """The bot did not answer in time: the conversation waits in its fallback team's queue."""
    team = Assignee(AssigneeKind.TEAM, conv.team_id or DEFAULT_FALLBACK_TEAM)
    return conv_rules.enqueue(conv, team, now)


def fallback_comment(conv: Conversation) -> str:
    bot = conv.assignee.id if conv.assignee else "?"
    seconds = conv.bot_timeout_seconds or conv_rules.DEFAULT_BOT_TIMEOUT_SECONDS
    return f"bot {bot} did not answer within {seconds} s"


def is_bots(conv: Conversation, bot_id: str) -> bool:
    """Whether `bot_id` holds this conversation now (what an `integration` token for that bot may act on)."""
    return conv.is_open and conv.assignee == Assignee(AssigneeKind.BOT, bot_id)
