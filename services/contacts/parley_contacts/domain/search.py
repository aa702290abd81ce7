"""Search criteria as search-key conditions (exact keys and key prefixes), and the opaque page cursor."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from parley_contacts.domain.card import Key, field_key, username_key
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.names import fold
from parley_contacts.domain.validation import field_name

MIN_PHONE_PREFIX_DIGITS = 1
ACTIVITY_KEY = re.compile(r"^\d{17}\|[\w-]{1,64}$")


@dataclass(frozen=True)
class Condition:
    key: str
    prefix: bool = False


@dataclass(frozen=True)
class Criteria:
    phone: str | None = None
    name: str | None = None
    user_id: str | None = None
    external_id: str | None = None
    username: str | None = None
    email: str | None = None
    label: str | None = None
    field: str | None = None
    value: str | None = None


def conditions(criteria: Criteria) -> list[Condition]:
    """Every given criterion, all of which a contact must match, most selective first: the first one is the
    indexed query, the others are checked on the cards it returns (see `matches`)."""
    found: list[Condition] = []
    if criteria.user_id:
        found.append(Condition(Key.USER_ID + criteria.user_id))
    if criteria.external_id:
        found.append(Condition(Key.EXTERNAL_ID + criteria.external_id))
    if criteria.email:
        found.append(Condition(Key.EMAIL + criteria.email.strip().lower()))
    if criteria.username:
        found.append(Condition(Key.USERNAME + username_key(criteria.username)))
    if criteria.field is not None or criteria.value is not None:
        found.append(_field_condition(criteria.field, criteria.value))
    if criteria.phone is not None:
        found.append(Condition(Key.PHONE + phone_prefix(criteria.phone), prefix=True))
    if criteria.name is not None:
        folded = fold(criteria.name)
        if not folded:
            raise InvalidInput("invalid_name_query", "a name search needs at least one letter", "name")
        found.append(Condition(Key.NAME + folded, prefix=True))
    if criteria.label:
        found.append(Condition(Key.LABEL + fold(criteria.label)))
    return found


def satisfied(keys: list[str], condition: Condition) -> bool:
    if condition.prefix:
        return any(key.startswith(condition.key) for key in keys)
    return condition.key in keys


def matches(keys: list[str], conditions: list[Condition]) -> bool:
    """Whether one card's search keys satisfy every condition, each by a single key (per element)."""
    return all(satisfied(keys, condition) for condition in conditions)


def phone_prefix(raw: str) -> str:
    """'+7 912' -> '+7912'. The prefix must start with the country code: we never guess a region."""
    text = raw.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("00"):
        digits = digits[2:]
    if any(ch.isalpha() for ch in text) or len(digits) < MIN_PHONE_PREFIX_DIGITS:
        raise InvalidInput("invalid_phone_query",
                           f"search by phone with the country code and at least {MIN_PHONE_PREFIX_DIGITS} digits",
                           "phone")
    return "+" + digits


def _field_condition(name: str | None, value: str | None) -> Condition:
    if name is None or value is None:
        raise InvalidInput("invalid_field_query", "a custom field search needs both `field` and `value`", "field")
    return Condition(field_key(field_name(name), value))


def encode_cursor(activity_key: str) -> str:
    return base64.urlsafe_b64encode(activity_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not ACTIVITY_KEY.match(text):
        raise InvalidInput("invalid_cursor", "the cursor is not one this API returned", "cursor")
    return text
