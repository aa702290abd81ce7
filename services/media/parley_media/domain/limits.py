"""What each channel accepts: allowed real mime types and their maximum sizes (reference/channels.md).

Inbound limits say what we keep from a customer; outbound limits say what the channel will take from us.
Executables and other dangerous types are refused on every channel regardless of the table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MB = 1024 * 1024
KB = 1024

DANGEROUS_TYPES = frozenset({
    "application/x-msdownload", "application/x-executable", "application/x-sharedlib", "application/x-mach-binary",
    "application/vnd.microsoft.portable-executable", "application/x-dosexec", "application/x-shockwave-flash",
    "application/wasm", "application/x-google-chrome-extension", "application/x-deb", "application/x-rpm",
})

OFFICE_TYPES = frozenset({
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class Rule:
    types: frozenset[str]  # exact mime types, or "image/*"-style prefixes, or "*" for any non-dangerous type
    max_bytes: int

    def allows_type(self, mime: str) -> bool:
        if "*" in self.types or mime in self.types:
            return True
        return f"{mime.split('/', 1)[0]}/*" in self.types


def _rules(*pairs: tuple[frozenset[str] | set[str], int]) -> tuple[Rule, ...]:
    return tuple(Rule(frozenset(types), size) for types, size in pairs)


# Outbound (what the channel takes from us). Sources: WhatsApp Cloud API media table (§1.11), Telegram
# Bot API upload limits (§3.8), Viber bot media limits (§4.5, unverified), Messenger 25 MB attachments.
OUTBOUND: dict[str, tuple[Rule, ...]] = {
    "whatsapp": _rules(
        ({"image/jpeg", "image/png"}, 5 * MB),
        ({"image/webp"}, 500 * KB),
        ({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, 16 * MB),
        ({"video/mp4", "video/3gpp"}, 16 * MB),
        ({"text/plain", "application/pdf"} | OFFICE_TYPES, 100 * MB),
    ),
    "messenger": _rules(({"image/*", "audio/*", "video/*", "application/pdf", "text/plain"} | OFFICE_TYPES, 25 * MB)),
    "instagram": _rules(({"image/jpeg", "image/png", "image/gif"}, 8 * MB), ({"video/*", "audio/*"}, 25 * MB)),
    "telegram": _rules(({"image/jpeg", "image/png", "image/webp"}, 10 * MB), ({"*"}, 50 * MB)),
    "viber": _rules(
        ({"image/jpeg", "image/png", "image/gif"}, 1 * MB),
        ({"video/mp4"}, 26 * MB),
        ({"*"}, 50 * MB),
    ),
    "email": _rules(({"*"}, 25 * MB)),
    "sandbox": _rules(({"*"}, 25 * MB)),
}

# Inbound (what we keep from customers): the provider's own delivery ceiling; any non-dangerous type.
INBOUND: dict[str, tuple[Rule, ...]] = {
    "whatsapp": _rules(({"*"}, 100 * MB)),
    "messenger": _rules(({"*"}, 25 * MB)),
    "instagram": _rules(({"*"}, 25 * MB)),
    "telegram": _rules(({"*"}, 20 * MB)),
    "viber": _rules(({"*"}, 200 * MB)),
    "email": _rules(({"*"}, 35 * MB)),
    "sandbox": _rules(({"*"}, 25 * MB)),
}


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # machine-readable: empty, type_not_allowed, too_large, dangerous_type
    detail: str | None = None


ACCEPTED = Verdict(True)


def max_size(channel_type: str, direction: Direction) -> int:
    """The largest size any type may have on this channel: a cheap early check before reading bytes."""
    table = INBOUND if direction is Direction.INBOUND else OUTBOUND
    return max(rule.max_bytes for rule in table[channel_type])


def check(channel_type: str, direction: Direction, mime: str, size: int) -> Verdict:
    """May `size` bytes of real type `mime` travel on this channel in this direction?"""
    if size <= 0:
        return Verdict(False, "empty", "the file has no bytes")
    if mime in DANGEROUS_TYPES:
        return Verdict(False, "dangerous_type", f"{mime} is never accepted")
    table = INBOUND if direction is Direction.INBOUND else OUTBOUND
    rules = [rule for rule in table[channel_type] if rule.allows_type(mime)]
    if not rules:
        return Verdict(False, "type_not_allowed", f"{channel_type} does not accept {mime}")
    # The first matching rule is the specific one (e.g. WhatsApp images 5 MB before any catch-all).
    limit = rules[0].max_bytes
    if size > limit:
        return Verdict(False, "too_large", f"{channel_type} accepts {mime} up to {limit} bytes, got {size}")
    return ACCEPTED
