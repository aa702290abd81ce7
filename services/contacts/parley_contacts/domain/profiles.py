"""Messenger and Instagram webhooks carry no name: the customer's profile (name, picture) is read once from the
Graph API (reference §2.6: `GET /<PSID>?fields=first_name,last_name,profile_pic`, `GET
/<IGSID>?fields=name,username,profile_pic`) and kept on the card. Pure: what to ask for, what an answer means,
what it changes on a card."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from parley_contacts.domain import validation
from parley_contacts.domain.card import Card, search_keys
from parley_contacts.domain.errors import InvalidInput

# The channel types whose profile is looked up, and the fields asked for.
PROFILE_FIELDS = {"messenger": "first_name,last_name,profile_pic", "instagram": "name,username,profile_pic"}
MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class Profile:
    name: str | None
    username: str | None
    picture: str | None


def profile_of(answer: dict[str, Any]) -> Profile:
    """A Graph API profile answer (either channel's shape); a field of the wrong kind or an unsafe URL is
    dropped, never stored."""
    def text(key: str) -> str | None:
        value = answer.get(key)
        return value.strip()[:MAX_NAME_CHARS] or None if isinstance(value, str) else None

    first_last = " ".join(part for part in (text("first_name"), text("last_name")) if part)
    picture = answer.get("profile_pic")
    try:
        safe_picture = validation.avatar_url(picture) if isinstance(picture, str) else None
    except InvalidInput:
        safe_picture = None
    return Profile(name=text("name") or first_last or None, username=text("username"), picture=safe_picture)


def with_profile(card: Card, channel_id: str, external_user_id: str, profile: Profile, now: datetime,
                 *, refresh: bool) -> tuple[Card, dict[str, Any]]:
    """The card with the platform's profile, and what changed (for ContactUpdated). The platform name and a
    picture the platform gave are the platform's to change; the display name and a picture an agent set are
    never touched. A first look-up fills only what the card lacks; a refresh (an agent's action) renews both."""
    identities = [
        {**item, "platform_name": profile.name or item.get("platform_name"),
         "username": profile.username or item.get("username"), "profile_fetched_at": now}
        if (item["channel_id"], item["external_user_id"]) == (channel_id, external_user_id) else item
        for item in card.get("identities", [])
    ]
    updated: Card = {**card, "identities": identities}
    changed: dict[str, Any] = {}
    if profile.name and profile.name != card.get("platform_name") and (refresh or not card.get("platform_name")):
        updated.update(platform_name=profile.name, platform_name_at=now)
        changed["platform_name"] = profile.name
    platform_picture = card.get("avatar_url") is None or card.get("avatar_from_platform")
    if profile.picture and profile.picture != card.get("avatar_url") and platform_picture and (
            refresh or card.get("avatar_url") is None):
        updated.update(avatar_url=profile.picture, avatar_from_platform=True)
        changed["avatar_url"] = profile.picture
    updated["search_keys"] = search_keys(updated)
    return updated, changed


def platform_identities(card: Card, looked_up: bool | None = None) -> list[dict[str, Any]]:
    """The card's identities on channels with a profile to read (all, or only those `looked_up` or not yet)."""
    return [item for item in card.get("identities", []) if item.get("channel_type") in PROFILE_FIELDS
            and (looked_up is None or bool(item.get("profile_fetched_at")) == looked_up)]
