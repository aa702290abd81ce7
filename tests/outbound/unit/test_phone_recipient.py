"""Which of the users with a phone a Telegram / Viber message by phone goes to (domain/phone_recipient.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley_common.events.common import ChannelType, SenderKind
from parley_outbound.domain.phone_recipient import choose_identity, resolved_by_phone
from parley_outbound.domain.window import MessageKind, SendIntent, WindowFacts

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
TEXT_ON_VIBER = SendIntent(ChannelType.VIBER, SenderKind.HUMAN, MessageKind.FREE_FORM)
TEXT_ON_TELEGRAM = SendIntent(ChannelType.TELEGRAM, SenderKind.HUMAN, MessageKind.FREE_FORM)


def heard(days_ago: int, subscribed: bool | None = True, blocked: bool = False) -> WindowFacts:
    return WindowFacts(last_customer_at=NOW - timedelta(days=days_ago), subscribed=subscribed, blocked=blocked)


def test_only_telegram_and_viber_resolve_a_phone_to_a_user() -> None:
    assert resolved_by_phone(ChannelType.TELEGRAM) and resolved_by_phone(ChannelType.VIBER)
    assert not resolved_by_phone(ChannelType.WHATSAPP)


def test_nobody_with_the_phone_is_none() -> None:
    assert choose_identity([], TEXT_ON_VIBER, NOW) is None


def test_a_reachable_user_wins_over_a_more_recent_unreachable_one() -> None:
    candidates = [("left", heard(1, subscribed=False)), ("blocked", heard(0, blocked=True)), ("old", heard(30)),
                  ("older", heard(60))]
    assert choose_identity(candidates, TEXT_ON_VIBER, NOW) == "old"


def test_when_nobody_is_reachable_the_most_recent_is_chosen_for_the_channels_refusal() -> None:
    candidates = [("never", WindowFacts()), ("blocked-bot", heard(2, subscribed=False))]
    assert choose_identity(candidates, TEXT_ON_TELEGRAM, NOW) == "blocked-bot"
