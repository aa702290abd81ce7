"""Writing first by phone where the phone is not the address (Telegram, Viber): neither lets a bot write to a
number, only to a user who started it, so the phone is resolved to such a user among the contacts. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from parley_common.events.common import ChannelType
from parley_outbound.domain.window import SendIntent, WindowFacts, decide

RESOLVED_BY_PHONE = frozenset({ChannelType.TELEGRAM, ChannelType.VIBER})
_NEVER = datetime.min.replace(tzinfo=UTC)
WriteFirst = Literal["template", "known_customer"]


def resolved_by_phone(channel_type: ChannelType) -> bool:
    return channel_type in RESOLVED_BY_PHONE


def choose_identity(candidates: Sequence[tuple[str, WindowFacts]], intent: SendIntent, now: datetime) -> str | None:
    """The identity to write to among those of the contacts with the phone: one the channel's rules let us write
    to now, the most recently heard from first; when none may be, the most recent anyway, so the send is refused
    with that channel's own reason (unsubscribed, blocked the bot). None: nobody with the phone is on it."""
    ordered = sorted(candidates, key=lambda candidate: candidate[1].last_customer_at or _NEVER, reverse=True)
    for user, facts in ordered:
        if decide(intent, facts, now).allowed:
            return user
    return ordered[0][0] if ordered else None


def write_first_by_phone(channel_type: ChannelType) -> WriteFirst | None:
    """How a new conversation starts by phone on a channel: `template` (WhatsApp: the phone is the address, only an
    approved template may open), `known_customer` (a user the phone resolves to, then the channel's rules), None."""
    if channel_type is ChannelType.WHATSAPP:
        return "template"
    return "known_customer" if resolved_by_phone(channel_type) else None
