"""Phone numbers in E.164. A number without a country code is refused: we never guess a region."""

from __future__ import annotations

import unicodedata

import phonenumbers

MIN_DIGITS = 7


class InvalidPhoneNumber(ValueError):
    pass


def to_e164(raw: str) -> str:
    """Normalise '+7 (912) 345-67-89', '79123456789' or '0079…' to '+79123456789'.

    WhatsApp sends `wa_id` without '+'; we add it. Raises InvalidPhoneNumber for anything that is not a
    possible number with a country code or has fewer than MIN_DIGITS digits.
    """
    digits = _ascii_digits(raw)
    if len(digits) < MIN_DIGITS:
        raise InvalidPhoneNumber(f"a phone number needs at least {MIN_DIGITS} digits")
    if digits.startswith("00"):
        digits = digits[2:]
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber("not a phone number with a country code") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("not a possible phone number for its country code")
    if not phonenumbers.is_valid_number(parsed):
        # Possible but outside the known ranges (new ranges appear before the metadata knows them): keep the
        # digits as given; the library's normalisation of such numbers is not stable (it strips zeros).
        return "+" + digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _ascii_digits(raw: str) -> str:
    """Digits only; digits of any script (e.g. Arabic-Indic, typed on an Arabic keyboard) become ASCII."""
    return "".join(str(unicodedata.digit(ch)) for ch in raw if unicodedata.digit(ch, None) is not None)


def mask(phone: str) -> str:
    """For logs: keep the country code and the last two digits only."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    return f"+{digits[:2]}{'*' * (len(digits) - 4)}{digits[-2:]}"
