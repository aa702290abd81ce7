"""Agent edits of a card: each returns the new card and the changed fields (for ContactUpdated)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from parley_contacts.domain import validation
from parley_contacts.domain.card import Card, unique, with_keys
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.validation import FieldType

EDITABLE = ("display_name", "avatar_url", "phones", "emails", "external_id", "comment")
MAX_VALUES = 20


def normalised_patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    """Validate every field before anything is written: a bad field refuses the whole patch."""
    clean: dict[str, Any] = {}
    for name, value in patch.items():
        if name not in EDITABLE:
            raise InvalidInput("unknown_field", f"{name!r} cannot be edited", name)
        if name == "phones":
            clean[name] = unique(validation.phone(item) for item in _bounded(value, name))
        elif name == "emails":
            clean[name] = unique(validation.email(item) for item in _bounded(value, name))
        elif name == "avatar_url" and isinstance(value, str):
            clean[name] = validation.avatar_url(value)
        elif name == "display_name" and isinstance(value, str):
            clean[name] = validation.display_text(value, name)
        else:
            clean[name] = value.strip() or None if isinstance(value, str) else value
    return clean


def _bounded(values: list[str], name: str) -> list[str]:
    if len(values) > MAX_VALUES:
        raise InvalidInput("too_many_values", f"at most {MAX_VALUES} {name}", name)
    return values


def apply_patch(card: Card, patch: Mapping[str, Any], now: datetime) -> tuple[Card, dict[str, Any]]:
    clean = normalised_patch(patch)
    changed = {name: value for name, value in clean.items() if card.get(name) != value}
    # a picture the agent gave: a platform refresh keeps it, and the server never fetches its URL
    marks = {"avatar_from_platform": False} if "avatar_url" in changed else {}
    return _touched(card, {**changed, **marks}, now), changed


def change_labels(card: Card, add: list[str], remove: list[str], now: datetime) -> tuple[Card, list[str], list[str]]:
    """The card with labels added and removed; returns the labels actually added and removed."""
    to_add = unique(validation.label(item) for item in add)
    to_remove = {validation.label(item) for item in remove}
    current: list[str] = card.get("labels", [])
    labels = unique([*(label for label in current if label not in to_remove), *to_add])
    added = [label for label in labels if label not in current]
    removed = [label for label in current if label not in labels]
    return _touched(card, {"labels": labels}, now), added, removed


def set_field(card: Card, name: str, kind: str, value: object, known_type: str | None,
              now: datetime) -> tuple[Card, dict[str, Any]]:
    """Set custom field `name`; a field keeps the type it was first created with in the tenant."""
    field = validation.field_name(name)
    field_type = validation.field_type(kind)
    if known_type is not None and known_type != field_type.value:
        raise InvalidInput("field_type_mismatch", f"field {field!r} is of type {known_type} in this tenant", "type")
    stored = validation.field_value(field_type, value)
    fields = {**card.get("custom_fields", {}), field: {"type": field_type.value, "value": stored}}
    return _touched(card, {"custom_fields": fields}, now), {f"custom_fields.{field}": stored}


def remove_field(card: Card, name: str, now: datetime) -> tuple[Card, dict[str, Any]]:
    fields = {key: value for key, value in card.get("custom_fields", {}).items() if key != name}
    return _touched(card, {"custom_fields": fields}, now), {f"custom_fields.{name}": None}


def set_blocked(card: Card, channel_id: str, external_user_id: str | None, blocked: bool, *, by: str,
                reason: str | None, now: datetime) -> tuple[Card, list[dict[str, Any]]]:
    """Block or unblock the card's identities on a channel (one, or all on it); returns those that changed."""
    changed: list[dict[str, Any]] = []
    identities = []
    for current in card.get("identities", []):
        item = current
        target = item["channel_id"] == channel_id and external_user_id in (None, item["external_user_id"])
        if target and bool(item.get("blocked")) != blocked:
            item = {**item, "blocked": blocked, "blocked_at": now if blocked else None,
                    "blocked_by": by if blocked else None, "block_reason": reason if blocked else None}
            changed.append(item)
        identities.append(item)
    if not any(item["channel_id"] == channel_id and external_user_id in (None, item["external_user_id"])
               for item in identities):
        raise InvalidInput("unknown_identity", "the contact has no such identity on that channel", "channel_id")
    return _touched(card, {"identities": identities}, now), changed


def _touched(card: Card, changes: Mapping[str, Any], now: datetime) -> Card:
    updated = {**card, **changes, "updated_at": now}
    return with_keys(updated)


__all__ = ["FieldType", "apply_patch", "change_labels", "remove_field", "set_blocked", "set_field"]
