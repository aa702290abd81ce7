"""Validation of what agents and integrations write on a card: phones, emails, labels, custom fields."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from urllib.parse import urlsplit

from parley_common.phones import InvalidPhoneNumber, to_e164
from parley_contacts.domain.errors import InvalidInput

MAX_LABEL_LENGTH = 64
MAX_FIELD_NAME_LENGTH = 64
MAX_TEXT_VALUE_LENGTH = 1024
MAX_COMMENT_LENGTH = 4000
# edna's rule: <login>@<text>.<text2>, login of Latin letters, digits, dots, underscores, dashes; text2 ≥ 2 letters
EMAIL = re.compile(r"^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9._-]{1,64})")
# Control characters (NUL included) and the bidi embeddings, overrides and isolates that make a name or a label
# read differently from what it is (e.g. "\u202egnp.exe").
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
MAX_URL_LENGTH = 2048


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


def phone(raw: str) -> str:
    try:
        return to_e164(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidInput("invalid_phone", f"{exc}; include the country code, e.g. +14155550123", "phone") from None


def email(raw: str) -> str:
    value = raw.strip()
    if len(value) > 254 or not EMAIL.match(value):
        raise InvalidInput("invalid_email", "not an email address of the form login@domain.tld", "email")
    return value.lower()


def display_text(raw: str, field: str) -> str | None:
    """A name shown to agents: trimmed, None when empty, without control or bidi-override characters."""
    if UNSAFE_TEXT.search(raw):
        raise InvalidInput("invalid_text", "control and bidi-override characters are not allowed", field)
    return raw.strip() or None


def avatar_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    parsed = urlsplit(value)
    if (parsed.scheme.lower() not in ("http", "https") or not parsed.hostname or len(value) > MAX_URL_LENGTH
            or UNSAFE_TEXT.search(value) or any(ch.isspace() for ch in value)):
        raise InvalidInput("invalid_avatar_url", "an avatar is an http(s) URL", "avatar_url")
    return value


def label(raw: str) -> str:
    if UNSAFE_TEXT.search(raw.replace("\t", " ").replace("\n", " ")):
        raise InvalidInput("invalid_label", "control and bidi-override characters are not allowed", "labels")
    value = " ".join(raw.split())
    if not value:
        raise InvalidInput("invalid_label", "a label cannot be empty", "labels")
    if len(value) > MAX_LABEL_LENGTH:
        raise InvalidInput("label_too_long", f"a label has at most {MAX_LABEL_LENGTH} characters", "labels")
    return value


def field_name(raw: str) -> str:
    """Custom field names become MongoDB keys and search keys: no '$', '.', or control characters."""
    value = raw.strip()
    if not value or len(value) > MAX_FIELD_NAME_LENGTH:
        raise InvalidInput("invalid_field_name", f"a field name has 1 to {MAX_FIELD_NAME_LENGTH} characters", "name")
    if "$" in value or "." in value or any(ord(ch) < 32 for ch in value):
        raise InvalidInput("invalid_field_name", "a field name cannot contain '$', '.' or control characters", "name")
    return value


def field_type(raw: str) -> FieldType:
    try:
        return FieldType(raw)
    except ValueError:
        allowed = ", ".join(kind.value for kind in FieldType)
        raise InvalidInput("unknown_field_type", f"unknown field type {raw!r}; use one of: {allowed}", "type") from None


def field_value(kind: FieldType, value: object) -> str | float | bool:
    """The value in its stored form (dates as ISO text) or InvalidInput naming the expected type."""
    if kind is FieldType.BOOLEAN and isinstance(value, bool):
        return value
    if kind is FieldType.NUMBER and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is FieldType.TEXT and isinstance(value, str) and len(value) <= MAX_TEXT_VALUE_LENGTH:
        return value
    if kind is FieldType.DATE and isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise InvalidInput("invalid_field_value", f"the value is not a valid {kind.value}", "value")


def comment_text(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > MAX_COMMENT_LENGTH:
        raise InvalidInput("invalid_comment", f"a comment has 1 to {MAX_COMMENT_LENGTH} characters", "text")
    return value


def mentions(text: str) -> list[str]:
    """Logins mentioned as @login, in order of first appearance."""
    found: list[str] = []
    for login in MENTION.findall(text):
        cleaned = login.rstrip(".")
        if cleaned and cleaned not in found:
            found.append(cleaned)
    return found
