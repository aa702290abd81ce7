"""The messaging-window policy: may this message go to this customer now, and what will it cost?

Pure: every fact (last customer message time in *provider* time, entry point, subscription, block) is an
input, and so is `now`. The rules are the channels' documented ones (shared/reference/channels.md §1.13,
§2.5, §3.7, §4.8); the window is half-open: at exactly 24:00:00 it is already closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from parley_common.events.common import ChannelType, SenderKind

SERVICE_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
FREE_ENTRY_WINDOW = timedelta(hours=72)
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


@dataclass(frozen=True, slots=True)
class WindowFacts:
    """What the window projection knows about one customer on one channel."""

    last_customer_at: datetime | None = None
    free_entry_at: datetime | None = None  # the customer's message that came through a free entry point
    free_entry_window_started_at: datetime | None = None  # our first reply to it, which opens the 72 h
    subscribed: bool | None = None  # Viber only; None = never heard of them
    blocked: bool = False


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
    channel = intent.channel_type
    if channel is ChannelType.WHATSAPP:
        return _whatsapp(intent, facts, now)
    if channel in (ChannelType.MESSENGER, ChannelType.INSTAGRAM):
        return _meta_messaging(intent, facts, now)
    if channel is ChannelType.TELEGRAM:
        # No window, but a bot cannot start a conversation: the user must have written first.
        if facts.last_customer_at is None:
            return _refuse(Reason.CUSTOMER_NEVER_WROTE)
        return _free_service(Reason.NO_WINDOW)
    if channel is ChannelType.VIBER:
        return _free_service(Reason.SUBSCRIBED) if facts.subscribed else _refuse(Reason.NOT_SUBSCRIBED)
    return _free_service(Reason.NO_WINDOW)  # email and sandbox: always allowed


def _whatsapp(intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    window_open = within(facts.last_customer_at, SERVICE_WINDOW, now)
    in_free_entry = within(facts.free_entry_window_started_at, FREE_ENTRY_WINDOW, now)
    # Replying within 24 h of a free-entry-point message is free and opens the 72 h window (pricing only).
    opens_free_entry = (
        facts.free_entry_window_started_at is None and within(facts.free_entry_at, SERVICE_WINDOW, now)
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


def _meta_messaging(intent: SendIntent, facts: WindowFacts, now: datetime) -> Decision:
    if facts.last_customer_at is None:
        return _refuse(Reason.CUSTOMER_NEVER_WROTE)
    if within(facts.last_customer_at, SERVICE_WINDOW, now):
        return _free_service(Reason.WITHIN_WINDOW)
    if intent.sender_kind is not SenderKind.HUMAN:
        return _refuse(Reason.AUTOMATION_WINDOW_CLOSED)  # HUMAN_AGENT must never be used by bots
    if within(facts.last_customer_at, HUMAN_AGENT_WINDOW, now):
        return Decision(Verdict.ALLOWED, Reason.HUMAN_AGENT_TAG, PricingCategory.SERVICE, True,
                        tag=HUMAN_AGENT_TAG)
    return _refuse(Reason.HUMAN_AGENT_WINDOW_CLOSED)


def _free_service(reason: Reason) -> Decision:
    return Decision(Verdict.ALLOWED, reason, PricingCategory.SERVICE, True)


def _refuse(reason: Reason) -> Decision:
    return Decision(Verdict.REFUSED, reason, PricingCategory.SERVICE, True)
