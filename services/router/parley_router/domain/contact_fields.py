"""Contact custom fields as routing facts: what a `ContactUpdated.changed` means for the projection, and how a
typed value (text, number, boolean, ISO date) compares with a rule's string value."""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "custom_fields."


def field_changes(changed: Mapping[str, object]) -> tuple[dict[str, object], tuple[str, ...]]:
    """Split `custom_fields.<name>` entries into values to set and names to drop (a None value = removed).
    Other keys (name, e-mail, ...) are not custom fields and are ignored here."""
    to_set: dict[str, object] = {}
    to_drop: list[str] = []
    for key, value in changed.items():
        if not key.startswith(PREFIX) or len(key) == len(PREFIX):
            continue
        name = key[len(PREFIX):]
        if value is None:
            to_drop.append(name)
        else:
            to_set[name] = value
    return to_set, tuple(sorted(to_drop))


def rule_value(value: object) -> str:
    """The form a rule compares with: booleans `true`/`false`, whole numbers without `.0` (contacts stores
    numbers as floats), everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_facts(fields: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """The contact's custom fields as sorted (name, value) pairs for `Facts.custom_fields`."""
    return tuple(sorted((name, rule_value(value)) for name, value in fields.items() if value is not None))


def folded(primary: Mapping[str, object], merged: Mapping[str, object]) -> dict[str, object]:
    """A merge keeps the primary's value on conflict and nothing of the other is lost (as contacts does)."""
    return {**merged, **primary}
