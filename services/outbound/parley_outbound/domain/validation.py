"""Checks on what a user asks to send, before any policy or provider is involved.

Email addresses follow the edna rule: <login>@<text>.<text2> or <login>@<text>.<text>.<text2>, where the login
has Latin letters, digits, dots, underscores and dashes; each domain label Latin letters, digits and dashes;
the top level at least two Latin letters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)?\.[A-Za-z]{2,}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
MIN_PHONE_DIGITS = 7
MAX_ATTACHMENTS = 1


class InvalidRequest(ValueError):
    """A request that can never be sent as it is; `code` is the API error code."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def is_valid_email(address: str) -> bool:
    return _EMAIL.fullmatch(address) is not None


def check_email_addresses(field: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        if not is_valid_email(address):
            raise InvalidRequest("invalid_email_address", f"{field}: {address!r} is not a valid email address",
                                 field)


def phone_digits_to_write_first(raw: str) -> str:
    """A phone number typed to write to a new client: digits only, at least seven of them (edna)."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) < MIN_PHONE_DIGITS or not re.fullmatch(r"\+?[\d\s().-]+", raw.strip()):
        raise InvalidRequest("invalid_phone_number",
                             f"a phone number needs at least {MIN_PHONE_DIGITS} digits", "recipient.phone")
    return digits


def check_single_attachment(media_ids: Iterable[str | None]) -> str | None:
    """One attachment per message (enKod): attaching a second one is an error, not a silent replace."""
    present = [media_id for media_id in media_ids if media_id]
    if len(present) > MAX_ATTACHMENTS:
        raise InvalidRequest("too_many_attachments", "a message carries at most one attachment", "content")
    return present[0] if present else None


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    missing: tuple[str, ...]


def render_placeholders(text: str, values: Mapping[str, str]) -> Rendered:
    """Replace `{{name}}` with the value of that custom field (SleekFlow: {{membership}} → "diamond").

    Unknown placeholders become empty and are reported in `missing`, so the caller decides whether that
    is acceptable (a saved reply) or an error (a template variable)."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in values:
            return values[name]
        missing.append(name)
        return ""

    return Rendered(_PLACEHOLDER.sub(substitute, text), tuple(dict.fromkeys(missing)))


def placeholders(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(match.group(1) for match in _PLACEHOLDER.finditer(text)))
