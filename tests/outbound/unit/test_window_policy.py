"""The window policy, channel by channel, at the exact boundaries and as properties over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.events.common import ChannelType, SenderKind
from parley_outbound.domain.window import (
    HUMAN_AGENT_TAG,
    Decision,
    MessageKind,
    PricingCategory,
    Reason,
    SendIntent,
    Verdict,
    WindowFacts,
    decide,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
HUMAN, BOT = SenderKind.HUMAN, SenderKind.BOT
FREE_FORM, TEMPLATE = MessageKind.FREE_FORM, MessageKind.TEMPLATE
WA, MSG, IG = ChannelType.WHATSAPP, ChannelType.MESSENGER, ChannelType.INSTAGRAM


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def run(channel: ChannelType, sender: SenderKind, kind: MessageKind, facts: WindowFacts,
        category: PricingCategory | None = None) -> Decision:
    return decide(SendIntent(channel, sender, kind, category), facts, NOW)


# --- WhatsApp ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("age", "verdict", "reason"), [
    (timedelta(0), Verdict.ALLOWED, Reason.WITHIN_WINDOW),
    (timedelta(hours=23, minutes=59, seconds=59), Verdict.ALLOWED, Reason.WITHIN_WINDOW),
    (timedelta(hours=24), Verdict.TEMPLATE_REQUIRED, Reason.WINDOW_CLOSED),
    (timedelta(hours=24, seconds=1), Verdict.TEMPLATE_REQUIRED, Reason.WINDOW_CLOSED),
    (timedelta(days=30), Verdict.TEMPLATE_REQUIRED, Reason.WINDOW_CLOSED),
])
@pytest.mark.parametrize("sender", [HUMAN, BOT])
def test_whatsapp_free_form_only_inside_24h(age: timedelta, verdict: Verdict, reason: Reason,
                                            sender: SenderKind) -> None:
    decision = run(WA, sender, FREE_FORM, WindowFacts(last_customer_at=NOW - age))
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert decision.pricing_category is PricingCategory.SERVICE and decision.free


def test_whatsapp_business_never_writes_free_form_first() -> None:
    decision = run(WA, HUMAN, FREE_FORM, WindowFacts())
    assert (decision.verdict, decision.reason) == (Verdict.TEMPLATE_REQUIRED, Reason.BUSINESS_INITIATED)


@pytest.mark.parametrize(("category", "free_inside"), [
    (PricingCategory.UTILITY, True), (PricingCategory.MARKETING, False), (PricingCategory.AUTHENTICATION, False),
])
def test_whatsapp_template_pricing_inside_and_outside_window(category: PricingCategory, free_inside: bool) -> None:
    inside = run(WA, HUMAN, TEMPLATE, WindowFacts(last_customer_at=ago(hours=23, minutes=59, seconds=59)), category)
    outside = run(WA, HUMAN, TEMPLATE, WindowFacts(last_customer_at=ago(hours=24)), category)
    first = run(WA, BOT, TEMPLATE, WindowFacts(), category)
    assert inside.allowed and outside.allowed and first.allowed
    assert (inside.pricing_category, inside.free, inside.reason) == (category, free_inside, Reason.WITHIN_WINDOW)
    assert (outside.free, outside.reason) == (False, Reason.TEMPLATE_OUTSIDE_WINDOW)
    assert (first.free, first.reason) == (False, Reason.TEMPLATE_BUSINESS_INITIATED)


@given(st.sampled_from(list(PricingCategory)), st.booleans(), st.sampled_from([None, timedelta(hours=1),
                                                                              timedelta(days=3)]))
def test_marketing_templates_never_go_to_a_customer_who_stopped_them(category: PricingCategory, opted_out: bool,
                                                                     age: timedelta | None) -> None:
    facts = WindowFacts(last_customer_at=None if age is None else ago(seconds=age.total_seconds()),
                        marketing_opted_out=opted_out)
    decision = run(WA, HUMAN, TEMPLATE, facts, category)
    if opted_out and category is PricingCategory.MARKETING:
        assert (decision.verdict, decision.reason) == (Verdict.REFUSED, Reason.MARKETING_OPTED_OUT)
    else:  # utility and authentication still go, in or out of the window
        assert decision.verdict is Verdict.ALLOWED


def test_whatsapp_free_entry_point_reply_is_free_and_opens_the_72h_window() -> None:
    entry = ago(hours=2)
    decision = run(WA, HUMAN, TEMPLATE, WindowFacts(last_customer_at=entry, free_entry_at=entry),
                   PricingCategory.MARKETING)
    assert decision.allowed and decision.free and decision.opens_free_entry_window


def test_whatsapp_free_entry_point_changes_pricing_not_the_window() -> None:
    # The FEP window opened by our reply 30 h ago is still running, but the customer wrote 25 h ago:
    facts = WindowFacts(last_customer_at=ago(hours=25), free_entry_at=ago(hours=25),
                        free_entry_window_started_at=ago(hours=24, minutes=30))
    free_form = run(WA, HUMAN, FREE_FORM, facts)
    template = run(WA, HUMAN, TEMPLATE, facts, PricingCategory.MARKETING)
    assert free_form.verdict is Verdict.TEMPLATE_REQUIRED
    assert template.allowed and template.free and not template.opens_free_entry_window


@pytest.mark.parametrize(("age", "free"), [
    (timedelta(hours=71, minutes=59, seconds=59), True), (timedelta(hours=72), False),
    (timedelta(hours=72, seconds=1), False),
])
def test_whatsapp_free_entry_window_lasts_72h_from_our_reply(age: timedelta, free: bool) -> None:
    facts = WindowFacts(last_customer_at=ago(days=5), free_entry_at=ago(days=5), free_entry_window_started_at=NOW - age)
    assert run(WA, BOT, TEMPLATE, facts, PricingCategory.MARKETING).free is free


def test_whatsapp_free_entry_message_older_than_24h_opens_nothing() -> None:
    facts = WindowFacts(last_customer_at=ago(hours=1), free_entry_at=ago(hours=24))
    decision = run(WA, HUMAN, TEMPLATE, facts, PricingCategory.MARKETING)
    assert not decision.free and not decision.opens_free_entry_window


# --- Messenger / Instagram -----------------------------------------------------------------------------

@pytest.mark.parametrize("channel", [MSG, IG])
@pytest.mark.parametrize(("age", "human", "bot"), [
    (timedelta(hours=23, minutes=59, seconds=59), (Verdict.ALLOWED, None), (Verdict.ALLOWED, None)),
    (timedelta(hours=24), (Verdict.ALLOWED, HUMAN_AGENT_TAG), (Verdict.REFUSED, None)),
    (timedelta(hours=24, seconds=1), (Verdict.ALLOWED, HUMAN_AGENT_TAG), (Verdict.REFUSED, None)),
    (timedelta(days=6, hours=23, minutes=59, seconds=59), (Verdict.ALLOWED, HUMAN_AGENT_TAG), (Verdict.REFUSED, None)),
    (timedelta(days=7), (Verdict.REFUSED, None), (Verdict.REFUSED, None)),
    (timedelta(days=7, seconds=1), (Verdict.REFUSED, None), (Verdict.REFUSED, None)),
])
def test_meta_24h_window_and_7_day_human_agent_tag(channel: ChannelType, age: timedelta,
                                                   human: tuple[Verdict, str | None],
                                                   bot: tuple[Verdict, str | None]) -> None:
    facts = WindowFacts(last_customer_at=NOW - age)
    by_human = run(channel, HUMAN, FREE_FORM, facts)
    by_bot = run(channel, BOT, FREE_FORM, facts)
    assert (by_human.verdict, by_human.tag) == human
    assert (by_bot.verdict, by_bot.tag) == bot


def test_meta_refusal_reasons() -> None:
    assert run(MSG, BOT, FREE_FORM, WindowFacts(last_customer_at=ago(days=2))).reason is Reason.AUTOMATION_WINDOW_CLOSED
    assert run(MSG, SenderKind.SYSTEM, FREE_FORM, WindowFacts(last_customer_at=ago(days=2))).tag is None
    assert run(IG, HUMAN, FREE_FORM, WindowFacts(last_customer_at=ago(days=8))).reason is \
        Reason.HUMAN_AGENT_WINDOW_CLOSED
    assert run(IG, HUMAN, FREE_FORM, WindowFacts()).reason is Reason.CUSTOMER_NEVER_WROTE


# --- Telegram, email, Viber, blocked -------------------------------------------------------------------

def test_telegram_has_no_window_but_the_user_must_start_the_bot() -> None:
    assert run(ChannelType.TELEGRAM, BOT, FREE_FORM, WindowFacts(last_customer_at=ago(days=400))).allowed
    never = run(ChannelType.TELEGRAM, HUMAN, FREE_FORM, WindowFacts())
    assert (never.verdict, never.reason) == (Verdict.REFUSED, Reason.CUSTOMER_NEVER_WROTE)
    blocked = run(ChannelType.TELEGRAM, HUMAN, FREE_FORM, WindowFacts(last_customer_at=ago(hours=1), subscribed=False))
    assert (blocked.verdict, blocked.reason) == (Verdict.REFUSED, Reason.CUSTOMER_BLOCKED_BOT)


def test_email_has_no_window() -> None:
    decision = run(ChannelType.EMAIL, HUMAN, FREE_FORM, WindowFacts())
    assert (decision.verdict, decision.reason, decision.free) == (Verdict.ALLOWED, Reason.NO_WINDOW, True)


@pytest.mark.parametrize(("subscribed", "verdict"), [(True, Verdict.ALLOWED), (False, Verdict.REFUSED),
                                                     (None, Verdict.REFUSED)])
def test_viber_subscribers_only(subscribed: bool | None, verdict: Verdict) -> None:
    facts = WindowFacts(last_customer_at=ago(days=100), subscribed=subscribed)
    assert run(ChannelType.VIBER, BOT, FREE_FORM, facts).verdict is verdict


@pytest.mark.parametrize("channel", list(ChannelType))
def test_blocked_customer_is_refused_on_every_channel(channel: ChannelType) -> None:
    facts = WindowFacts(last_customer_at=NOW, subscribed=True, blocked=True)
    decision = run(channel, HUMAN, TEMPLATE, facts)
    assert (decision.verdict, decision.reason) == (Verdict.REFUSED, Reason.CUSTOMER_BLOCKED)


# --- properties ----------------------------------------------------------------------------------------

ages = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30))


@given(age=ages, sender=st.sampled_from(list(SenderKind)))
def test_whatsapp_free_form_allowed_exactly_inside_24h(age: timedelta, sender: SenderKind) -> None:
    decision = run(WA, sender, FREE_FORM, WindowFacts(last_customer_at=NOW - age))
    assert decision.allowed is (age < timedelta(hours=24))
    assert decision.verdict is not Verdict.REFUSED


@given(age=ages, sender=st.sampled_from(list(SenderKind)), channel=st.sampled_from([MSG, IG]))
def test_meta_tag_only_for_humans_between_24h_and_7d(age: timedelta, sender: SenderKind,
                                                     channel: ChannelType) -> None:
    decision = run(channel, sender, FREE_FORM, WindowFacts(last_customer_at=NOW - age))
    tagged = sender is HUMAN and timedelta(hours=24) <= age < timedelta(days=7)
    assert (decision.tag == HUMAN_AGENT_TAG) is tagged
    assert decision.allowed is (age < timedelta(hours=24) or tagged)


@given(age=ages, category=st.sampled_from([PricingCategory.UTILITY, PricingCategory.MARKETING,
                                           PricingCategory.AUTHENTICATION]),
       fep=st.one_of(st.none(), ages))
def test_whatsapp_templates_always_allowed_and_fep_never_opens_free_form(
        age: timedelta, category: PricingCategory, fep: timedelta | None) -> None:
    facts = WindowFacts(last_customer_at=NOW - age, free_entry_at=NOW - age,
                        free_entry_window_started_at=None if fep is None else NOW - fep)
    assert run(WA, BOT, TEMPLATE, facts, category).allowed
    assert run(WA, BOT, FREE_FORM, facts).allowed is (age < timedelta(hours=24))
