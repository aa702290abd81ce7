"""A customer's marketing preference on the card: kept on the identity it was given for (a customer may stop
marketing on one WhatsApp number and not on another); the latest by provider time wins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from parley_contacts.domain.card import Card


def with_marketing_preference(card: Card, channel_id: str, external_user_id: str, opted_out: bool,
                              at: datetime) -> Card | None:
    """The card with the preference recorded, or None when it changes nothing (no such identity on the card,
    or the card holds a newer preference)."""
    identities: list[dict[str, Any]] = []
    changed = False
    for held in card.get("identities", []):
        ours = (held["channel_id"], held["external_user_id"]) == (channel_id, external_user_id)
        held_at = held.get("marketing_preference_at")
        if ours and (held_at is None or _aware(held_at) <= at):
            held = {**held, "marketing_opted_out": opted_out, "marketing_preference_at": at}  # noqa: PLW2901
            changed = True
        identities.append(held)
    return {**card, "identities": identities} if changed else None


def _aware(moment: datetime) -> datetime:
    """MongoDB gives back naive UTC datetimes."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
