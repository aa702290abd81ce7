"""Bots' routing and deadline (domain/bots.py): who gets a new conversation, when the bot is late, who takes over;
every transition that takes a conversation from its bot stops the bot's clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from parley_router.domain import bots
from parley_router.domain import conversation as c
from parley_router.domain.conversation import Assignee, AssigneeKind, Status
from parley_router.domain.rules import DEFAULT_TARGET, Rule

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
FAQ = Assignee(AssigneeKind.BOT, "faq-bot")
SECOND = timedelta(seconds=1)


def new() -> c.Conversation:
    return c.open_conversation("c1", "acme", "wa-1", "whatsapp", "u1", T0)


def test_a_rule_decides_then_the_channels_bot_then_the_default_team() -> None:
    rule = Rule("r1", FAQ, bot_timeout_seconds=10, fallback_team="sales")
    channel = bots.ChannelBot("welcome-bot", 30, "care")
    assert bots.route_of(rule, channel) == bots.Route(FAQ, "rule r1", rule, 10, "sales")
    assert bots.route_of(None, channel) == bots.Route(Assignee(AssigneeKind.BOT, "welcome-bot"), "channel's bot",
                                                      None, 30, "care")
    assert bots.route_of(None, None) == bots.Route(DEFAULT_TARGET, "default route")


def test_handed_to_a_bot_the_first_message_starts_its_clock_and_its_team_is_the_fallback() -> None:
    conv = bots.hand_to_bot(new(), bots.route_of(Rule("r1", FAQ, bot_timeout_seconds=10), None), T0)
    assert (conv.status, conv.assignee, conv.team_id, conv.bot_reply_due) == (
        Status.BOT, FAQ, bots.DEFAULT_FALLBACK_TEAM, T0 + 10 * SECOND)
    assert not bots.is_overdue(conv, T0 + 9 * SECOND) and bots.is_overdue(conv, T0 + 10 * SECOND)
    moved = bots.fall_back(conv, T0 + 10 * SECOND)
    assert (moved.status, moved.assignee, moved.bot_reply_due, moved.waiting_since) == (
        Status.QUEUED, Assignee(AssigneeKind.TEAM, "default"), None, T0)
    assert bots.fallback_comment(conv) == "bot faq-bot did not answer within 10 s"


def test_a_bot_reply_stops_the_clock_until_the_customer_writes_again() -> None:
    conv = bots.hand_to_bot(new(), bots.route_of(None, bots.ChannelBot("welcome-bot")), T0)
    assert conv.bot_reply_due == T0 + timedelta(seconds=c.DEFAULT_BOT_TIMEOUT_SECONDS)
    replied = c.bot_replied(conv, T0 + SECOND)
    assert (replied.bot_reply_due, replied.waiting_since, replied.unanswered) == (None, None, False)
    assert not bots.is_overdue(replied, T0 + timedelta(days=1))
    wrote = c.customer_wrote(replied, T0 + 5 * SECOND)
    assert wrote.bot_reply_due == T0 + 5 * SECOND + timedelta(seconds=c.DEFAULT_BOT_TIMEOUT_SECONDS)
    assert c.customer_wrote(wrote, T0 + 9 * SECOND).bot_reply_due == wrote.bot_reply_due  # the oldest waits


def test_a_bot_holds_only_its_open_conversations() -> None:
    conv = c.assign(new(), FAQ, T0)
    assert bots.is_bots(conv, "faq-bot") and not bots.is_bots(conv, "other-bot")
    assert not bots.is_bots(c.close(conv, T0), "faq-bot")
    assert not bots.is_bots(c.assign(conv, Assignee(AssigneeKind.TEAM, "sales"), T0), "faq-bot")


TAKE_FROM_BOT = {
    "agent replied": lambda conv: c.agent_replied(conv, "ann", T0),
    "assigned to an agent": lambda conv: c.assign(conv, Assignee(AssigneeKind.AGENT, "ann"), T0),
    "transferred to a team": lambda conv: c.assign(conv, Assignee(AssigneeKind.TEAM, "sales"), T0),
    "closed": lambda conv: c.close(conv, T0),
    "back to the queue": lambda conv: c.return_to_queue(conv, T0),
    "snoozed": lambda conv: c.snooze(conv, T0 + timedelta(hours=1), T0),
}


@given(st.sampled_from(sorted(TAKE_FROM_BOT)), st.integers(min_value=5, max_value=86_400))
def test_whatever_takes_it_from_the_bot_stops_the_clock(name: str, timeout: int) -> None:
    conv = bots.hand_to_bot(new(), bots.route_of(Rule("r", FAQ, bot_timeout_seconds=timeout), None), T0)
    after = TAKE_FROM_BOT[name](conv)
    assert after.bot_reply_due is None and not bots.is_overdue(after, T0 + timedelta(days=2))
