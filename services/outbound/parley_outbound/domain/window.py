"""The messaging-window policy: may this message go to this customer now, and what will it cost?

Pure: every fact (last customer message time in *provider* time, entry point, subscription, block) is an
input, and so is `now`. Which rule a channel follows, and its lengths, are the channel catalogue's
(parley_common.channel_catalogue); a channel type without catalogue facts is refused. The rules are the channels'
documented ones (shared/reference/channels.md §1.13, §2.5, §3.7, §4.8); the window is half-open: at exactly
24:00:00 it is already closed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from parley_common import channel_catalogue
from parley_common.channel_catalogue import UnknownChannelType, WindowKind, WindowRule
from parley_common.events.common import ChannelType, SenderKind

HUMAN_AGENT_TAG = "HUMAN_AGENT"


class Verdict(StrEnum):
    ALLOWED = "allowed"
    TEMPLATE_REQUIRED = "template_required"
    REFUSED = "refused"


class MessageKind(StrEnum):
    FREE_FORM = "free_form"
    TEMPLATE = "template"


class PricingCategory(StrEnum):
    SERVICE = "service"
    UTILITY = "utility"
    MARKETING = "marketing"
    AUTHENTICATION = "authentication"


class Reason(StrEnum):
    WITHIN_WINDOW = "within_window"
    HUMAN_AGENT_TAG = "human_agent_tag"
    TEMPLATE_OUTSIDE_WINDOW = "template_outside_window"
    TEMPLATE_BUSINESS_INITIATED = "template_business_initiated"
    NO_WINDOW = "no_window"
    SUBSCRIBED = "subscribed"
    WINDOW_CLOSED = "window_closed"
    BUSINESS_INITIATED = "business_initiated"
    HUMAN_AGENT_WINDOW_CLOSED = "human_agent_window_closed"
    AUTOMATION_WINDOW_CLOSED = "automation_window_closed"
    CUSTOMER_NEVER_WROTE = "customer_never_wrote"
    NOT_SUBSCRIBED = "not_subscribed"
    CUSTOMER_BLOCKED = "customer_blocked"
    UNKNOWN_CHANNEL = "unknown_channel"
    MARKETING_OPTED_OUT = "marketing_opted_out"
    CUSTOMER_BLOCKED_BOT = "customer_blocked_bot"


@dataclass(frozen=True, slots=True)
class WindowFacts:
    """What the window projection knows about one customer on one channel."""

    last_customer_at: datetime | None = None
    free_entry_at: datetime | None = None  # the customer's message that came through a free entry point
    free_entry_window_started_at: datetime | None = None  # our first reply to it, which opens the 72 h
    subscribed: bool | None = None  # Viber subscription, Telegram not blocking the bot; None = never heard
    blocked: bool = False
    marketing_opted_out: bool = False  # the customer stopped marketing messages (WhatsApp user_preferences)


@dataclass(frozen=True, slots=True)
class SendIntent:
    channel_type: ChannelType
    sender_kind: SenderKind
    message_kind: MessageKind
    template_category: PricingCategory | None = None  # templates only


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: Reason
    pricing_category: PricingCategory
    free: bool
    tag: str | None = None  # Messenger/Instagram message tag to set on the request
    opens_free_entry_window: bool = False  # this reply starts the 72 h free entry point window

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


def within(start: datetime | None, length: timedelta, now: datetime) -> bool:
    """Half-open: a window of 24 h is closed at exactly 24:00:00. A start slightly in the future (provider
    clock skew) counts as open."""
    return start is not None and now < start + length


def decide(intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    if facts.blocked:
        return _refuse(Reason.CUSTOMER_BLOCKED)
    if facts.marketing_opted_out and intent.template_category is PricingCategory.MARKETING:
        return _refuse(Reason.MARKETING_OPTED_OUT)  # utility and authentication templates still go
    try:
        rule = channel_catalogue.facts(intent.channel_type).window
    except UnknownChannelType:
        return _refuse(Reason.UNKNOWN_CHANNEL)
    return RULES[rule.kind](rule, intent, facts, now)


def _customer_first(rule: WindowRule, intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    """No window, but a bot cannot start a conversation: the user must have written first (Telegram), and not
    blocked the bot since."""
    if facts.subscribed is False:
        return _refuse(Reason.CUSTOMER_BLOCKED_BOT)
    if facts.last_customer_at is None:
        return _refuse(Reason.CUSTOMER_NEVER_WROTE)
    return _free_service(Reason.NO_WINDOW)


def _subscription(rule: WindowRule, intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    return _free_service(Reason.SUBSCRIBED) if facts.subscribed else _refuse(Reason.NOT_SUBSCRIBED)


def _any_time(rule: WindowRule, intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    return _free_service(Reason.NO_WINDOW)


def _templates_outside(rule: WindowRule, intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    window_open = within(facts.last_customer_at, _length(rule.service_window), now)
    in_free_entry = within(facts.free_entry_window_started_at, _length(rule.free_entry_window), now)
    # Replying within 24 h of a free-entry-point message is free and opens the 72 h window (pricing only).
    opens_free_entry = (
        facts.free_entry_window_started_at is None and within(facts.free_entry_at, _length(rule.service_window), now)
    )
    free_entry = in_free_entry or opens_free_entry
    if intent.message_kind is MessageKind.FREE_FORM:
        if window_open:
            return Decision(Verdict.ALLOWED, Reason.WITHIN_WINDOW, PricingCategory.SERVICE, True,
                            opens_free_entry_window=opens_free_entry)
        reason = Reason.BUSINESS_INITIATED if facts.last_customer_at is None else Reason.WINDOW_CLOSED
        return Decision(Verdict.TEMPLATE_REQUIRED, reason, PricingCategory.SERVICE, True)
    category = intent.template_category or PricingCategory.UTILITY
    # Utility templates inside the service window are free; marketing and authentication are always charged.
    free = free_entry or (window_open and category is PricingCategory.UTILITY)
    if window_open:
        reason = Reason.WITHIN_WINDOW
    elif facts.last_customer_at is None:
        reason = Reason.TEMPLATE_BUSINESS_INITIATED
    else:
        reason = Reason.TEMPLATE_OUTSIDE_WINDOW
    return Decision(Verdict.ALLOWED, reason, category, free, opens_free_entry_window=opens_free_entry)


def _human_agent_tag(rule: WindowRule, intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    if facts.last_customer_at is None:
        return _refuse(Reason.CUSTOMER_NEVER_WROTE)
    if within(facts.last_customer_at, _length(rule.service_window), now):
        return _free_service(Reason.WITHIN_WINDOW)
    if intent.sender_kind is not SenderKind.HUMAN:
        return _refuse(Reason.AUTOMATION_WINDOW_CLOSED)  # HUMAN_AGENT must never be used by bots
    if within(facts.last_customer_at, _length(rule.human_agent_window), now):
        return Decision(Verdict.ALLOWED, Reason.HUMAN_AGENT_TAG, PricingCategory.SERVICE, True,
                        tag=HUMAN_AGENT_TAG)
    return _refuse(Reason.HUMAN_AGENT_WINDOW_CLOSED)


RULES: dict[WindowKind, Callable[[WindowRule, SendIntent, WindowFacts, datetime], Decision]] = {
    WindowKind.TEMPLATES_OUTSIDE: _templates_outside,
    WindowKind.HUMAN_AGENT_TAG: _human_agent_tag,
    WindowKind.CUSTOMER_FIRST: _customer_first,
    WindowKind.SUBSCRIPTION: _subscription,
    WindowKind.NONE: _any_time,
}


def _length(window: timedelta | None) -> timedelta:
    """A window the rule needs; a catalogue entry without it is a closed window, never an open one."""
    return window if window is not None else timedelta(0)


def _free_service(reason: Reason) -> Decision:
    return Decision(Verdict.ALLOWED, reason, PricingCategory.SERVICE, True)


def _refuse(reason: Reason) -> Decision:
    return Decision(Verdict.REFUSED, reason, PricingCategory.SERVICE, True)
