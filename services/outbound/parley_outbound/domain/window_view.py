"""What `GET /v1/windows/{channel}/{customer}` answers: is the window open, when does it close, how long
is left (SleekFlow's "remaining response time") and which kinds of message may go now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from parley_common import channel_catalogue
from parley_common.channel_catalogue import UnknownChannelType, WindowRule
from parley_common.events.common import ChannelType, SenderKind
from parley_outbound.domain.window import MessageKind, SendIntent, WindowFacts, decide


@dataclass(frozen=True, slots=True)
class AllowedKind:
    sender_kind: SenderKind
    message_kind: MessageKind
    verdict: str
    reason: str
    tag: str | None


@dataclass(frozen=True, slots=True)
class WindowView:
    channel_type: ChannelType
    has_window: bool
    open: bool
    closes_at: datetime | None
    remaining: timedelta | None
    human_agent_closes_at: datetime | None
    last_customer_at: datetime | None
    allowed: tuple[AllowedKind, ...]


def window_view(channel_type: ChannelType, facts: WindowFacts, now: datetime) -> WindowView:
    try:
        rule = channel_catalogue.facts(channel_type).window
    except UnknownChannelType:
        rule = WindowRule(channel_catalogue.WindowKind.NONE)  # shown closed: decide() refuses every kind
    timed = rule.service_window is not None
    last = facts.last_customer_at
    closes_at = last + rule.service_window if rule.service_window is not None and last is not None else None
    is_open = closes_at is not None and now < closes_at
    human_closes = last + rule.human_agent_window if last is not None and rule.human_agent_window else None
    allowed = tuple(
        AllowedKind(sender, kind, decision.verdict.value, decision.reason.value, decision.tag)
        for sender in (SenderKind.HUMAN, SenderKind.BOT)
        for kind in MessageKind
        for decision in [decide(SendIntent(channel_type, sender, kind), facts, now)]
    )
    if not timed:
        is_open = any(item.verdict == "allowed" for item in allowed)
    remaining = max(closes_at - now, timedelta(0)) if closes_at is not None else None
    return WindowView(channel_type, timed, is_open, closes_at, remaining, human_closes, last, allowed)
