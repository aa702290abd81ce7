"""The contact card as a document, its search keys and its activity sort key.

A card is a plain mapping (what the repository stores). Every write recomputes `search_keys`: one multikey
index on (tenant_id, search_keys) serves every search (phone and name prefixes as key ranges, the rest as
exact keys), so a contact costs two index trees on write instead of one per searchable field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from parley_contacts.domain.names import fold, name_keys

Card = dict[str, Any]
KEY_SEPARATOR = "\x1f"


class Key:
    """Search-key prefixes, one per searchable attribute."""

    NAME = "n:"
    PHONE = "p:"
    EMAIL = "e:"
    USERNAME = "u:"
    USER_ID = "i:"
    EXTERNAL_ID = "x:"
    LABEL = "l:"
    FIELD = "c:"


def username_key(username: str) -> str:
    return username.strip().lstrip("@").casefold()


def field_key(name: str, value: object) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else _plain(value)
    return f"{Key.FIELD}{name}{KEY_SEPARATOR}{fold(text)}"


def _plain(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def activity_key(moment: datetime, contact_id: str) -> str:
    """Sorts by last activity, then id: a single-field cursor (no `$or`) that is unique per contact."""
    return f"{int(moment.timestamp() * 1_000_000):017d}|{contact_id}"


def search_keys(card: Mapping[str, Any]) -> list[str]:
    identities: list[Mapping[str, Any]] = card.get("identities", [])
    keys: list[str] = [Key.NAME + key for key in name_keys(card.get("display_name"), card.get("platform_name"))]
    phones = [*card.get("phones", []), *(i["phone"] for i in identities if i.get("phone"))]
    keys += [Key.PHONE + phone for phone in phones]
    keys += [Key.EMAIL + email.lower() for email in card.get("emails", [])]
    keys += [Key.USERNAME + username_key(i["username"]) for i in identities if i.get("username")]
    keys += [Key.USER_ID + i["external_user_id"] for i in identities]
    if card.get("external_id"):
        keys.append(Key.EXTERNAL_ID + card["external_id"])
    keys += [Key.LABEL + fold(label) for label in card.get("labels", [])]
    fields: Mapping[str, Mapping[str, Any]] = card.get("custom_fields", {})
    keys += [field_key(name, field["value"]) for name, field in fields.items()]
    return unique(keys)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def with_keys(card: Card) -> Card:
    card["search_keys"] = search_keys(card)
    card["activity_key"] = activity_key(card["last_activity_at"], card["_id"])
    return card


def identity(channel_id: str, external_user_id: str, *, channel_type: str | None = None, username: str | None = None,
             phone: str | None = None, platform_name: str | None = None) -> dict[str, Any]:
    return {
        "channel_id": channel_id, "channel_type": channel_type, "external_user_id": external_user_id,
        "username": username, "phone": phone, "platform_name": platform_name, "blocked": False,
    }


def new_card(contact_id: str, tenant_id: str, now: datetime, *, identities: list[dict[str, Any]] | None = None,
             phones: list[str] | None = None, display_name: str | None = None, platform_name: str | None = None,
             created_by_event_id: str | None = None) -> Card:
    card: Card = {
        "_id": contact_id, "tenant_id": tenant_id, "display_name": display_name, "platform_name": platform_name,
        "platform_name_at": now if platform_name else None, "avatar_url": None, "phones": phones or [],
        "emails": [], "external_id": None, "identities": identities or [], "labels": [], "custom_fields": {},
        "comment": None, "created_at": now, "updated_at": now, "last_seen_at": None, "last_activity_at": now,
        "created_by_event_id": created_by_event_id, "merged_from": [], "version": 1,
    }
    return with_keys(card)


def find_identity(card: Mapping[str, Any], channel_id: str, external_user_id: str) -> dict[str, Any] | None:
    for item in card.get("identities", []):
        if item["channel_id"] == channel_id and item["external_user_id"] == external_user_id:
            return dict(item)
    return None
