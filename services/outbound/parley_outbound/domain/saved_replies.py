"""Saved replies (SleekFlow / KAON snippets): text with `{{field}}` placeholders filled from the contact's custom
fields at send time. Pure.

A placeholder whose field the contact does not have refuses the send (`saved_reply_field_missing`, naming the
fields) rather than sending "your tier is ." to a customer: the agent fills the field or edits the text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from parley_outbound.domain.validation import InvalidRequest, render_placeholders

CUSTOM_FIELD_PREFIX = "custom_fields."


def render_saved_reply(text: str, fields: Mapping[str, str]) -> str:
    rendered = render_placeholders(text, fields)
    if rendered.missing:
        names = ", ".join(rendered.missing)
        raise InvalidRequest("saved_reply_field_missing",
                             f"the contact has no value for {names} used by the saved reply", names)
    if not rendered.text.strip():
        raise InvalidRequest("saved_reply_empty", "the saved reply renders to an empty text", "content")
    return rendered.text


def field_text(value: Any) -> str | None:
    """A custom field's value as it reads in a message; None for a removed (or empty) field."""
    if value is None or value in ("", []):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):  # the card's own shape: {"type": ..., "value": ...}
        return field_text(value.get("value"))
    return str(value)


def custom_field_changes(changed: Mapping[str, Any]) -> dict[str, str | None]:
    """The custom fields a ContactUpdated.changed touches: name -> new text, None when removed.

    contacts publishes `custom_fields.<name>: value` per field; a whole `custom_fields` mapping (a patch) is
    read as name -> value or name -> {type, value}."""
    fields: dict[str, str | None] = {}
    for key, value in changed.items():
        if key.startswith(CUSTOM_FIELD_PREFIX):
            fields[key[len(CUSTOM_FIELD_PREFIX):]] = field_text(value)
        elif key == "custom_fields" and isinstance(value, Mapping):
            fields.update({str(name): field_text(item) for name, item in value.items()})
    return fields


def applies_to(channel_types: tuple[str, ...], channel_type: str) -> bool:
    """A saved reply without channel types applies everywhere."""
    return not channel_types or channel_type in channel_types
