"""Merging two cards of one person: the primary keeps its id and wins conflicts; nothing of the other is lost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from parley_contacts.domain.card import Card, unique, with_keys
from parley_contacts.domain.errors import InvalidInput

COMMENT_SEPARATOR = "\n---\n"


def merge_cards(primary: Card, secondary: Card, now: datetime) -> Card:
    if primary["_id"] == secondary["_id"]:
        raise InvalidInput("merge_same_contact", "a contact cannot be merged into itself", "other_contact_id")
    if primary["tenant_id"] != secondary["tenant_id"]:
        raise InvalidInput("merge_across_tenants", "contacts of different tenants cannot be merged")
    merged = dict(primary)
    merged["identities"] = _identities(primary["identities"], secondary["identities"])
    for name in ("phones", "emails", "labels"):
        merged[name] = unique([*primary.get(name, []), *secondary.get(name, [])])
    merged["custom_fields"] = {**secondary.get("custom_fields", {}), **primary.get("custom_fields", {})}
    for name in ("display_name", "avatar_url", "external_id"):
        merged[name] = primary.get(name) or secondary.get(name)
    merged.update(_platform_name(primary, secondary))
    merged["comment"] = _comment(primary.get("comment"), secondary.get("comment"))
    merged["created_at"] = min(primary["created_at"], secondary["created_at"])
    merged["last_seen_at"] = _latest(primary.get("last_seen_at"), secondary.get("last_seen_at"))
    merged["last_activity_at"] = max(primary["last_activity_at"], secondary["last_activity_at"])
    merged["merged_from"] = unique([*primary.get("merged_from", []), secondary["_id"],
                                    *secondary.get("merged_from", [])])
    merged["updated_at"] = now
    merged["version"] = primary.get("version", 1) + 1
    return with_keys(merged)


def _identities(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {(item["channel_id"], item["external_user_id"]) for item in first}
    return [*first, *(item for item in second if (item["channel_id"], item["external_user_id"]) not in seen)]


def _platform_name(primary: Card, secondary: Card) -> dict[str, Any]:
    """The platform name most recently reported by a channel, whichever card saw it."""
    first_at, second_at = primary.get("platform_name_at"), secondary.get("platform_name_at")
    newer = second_at is not None and (first_at is None or second_at > first_at)
    if secondary.get("platform_name") and (not primary.get("platform_name") or newer):
        return {"platform_name": secondary["platform_name"], "platform_name_at": second_at}
    return {"platform_name": primary.get("platform_name"), "platform_name_at": first_at}


def _comment(first: str | None, second: str | None) -> str | None:
    if first and second and first != second:
        return first + COMMENT_SEPARATOR + second
    return first or second


def _latest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)
