"""Whether a file may travel on a channel: the sizes and types come from the channel catalogue
(parley_common.channel_catalogue); executables and other dangerous types are refused on every channel.

Inbound limits say what we keep from a customer (any safe type up to the provider's ceiling); outbound limits say
what the channel will take from us (its attachment rules)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parley_common.channel_catalogue import attachment_rule, facts, send_max_bytes

DANGEROUS_TYPES = frozenset({
    "application/x-msdownload", "application/x-executable", "application/x-sharedlib", "application/x-mach-binary",
    "application/vnd.microsoft.portable-executable", "application/x-dosexec", "application/x-shockwave-flash",
    "application/wasm", "application/x-google-chrome-extension", "application/x-deb", "application/x-rpm",
})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # machine-readable: empty, type_not_allowed, too_large, dangerous_type
    detail: str | None = None


ACCEPTED = Verdict(True)


def max_size(channel_type: str, direction: Direction) -> int:
    """The largest size any type may have on this channel: a cheap early check before reading bytes."""
    return facts(channel_type).receive_max_bytes if direction is Direction.INBOUND else send_max_bytes(channel_type)


def check(channel_type: str, direction: Direction, mime: str, size: int) -> Verdict:
    """May `size` bytes of real type `mime` travel on this channel in this direction?"""
    if size <= 0:
        return Verdict(False, "empty", "the file has no bytes")
    if mime in DANGEROUS_TYPES:
        return Verdict(False, "dangerous_type", f"{mime} is never accepted")
    if direction is Direction.INBOUND:
        limit = facts(channel_type).receive_max_bytes
        if size > limit:
            return Verdict(False, "too_large", f"{channel_type} delivers files up to {limit} bytes, got {size}")
        return ACCEPTED
    if attachment_rule(channel_type, mime, size) is not None:
        return ACCEPTED
    if not any(rule.accepts_type(mime) for rule in facts(channel_type).send_attachments):
        return Verdict(False, "type_not_allowed", f"{channel_type} does not accept {mime}")
    return Verdict(False, "too_large", f"{channel_type} does not accept {mime} of {size} bytes")
