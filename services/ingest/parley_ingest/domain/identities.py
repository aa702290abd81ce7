"""One customer, one key: a channel may name the same person by several identifiers (WhatsApp: the
business-scoped user id and the phone's wa_id; a username always comes with the BSUID, and as a released username
may later name someone else it links nobody) and in any combination from one webhook to the next.

A normaliser states which identifiers an event's customer carries (`IdentityClaim`); ingest keeps, per channel,
which key each identifier already stands for, and publishes the event under that key. The first key a customer
was seen under stays theirs: a conversation a business opened by phone and the customer's later reply carrying
only the business-scoped id meet in one conversation. Identifier changes (a new phone number, a new BSUID) are
claims holding both the old and the new identifiers, so the new ones join the old key."""

from __future__ import annotations

from dataclasses import dataclass

BSUID = "bsuid"
PHONE = "wa"


@dataclass(frozen=True, slots=True)
class IdentityClaim:
    """Identifiers seen together for one customer (`kind:value`, most telling first) and the key to use when
    none of them is known yet."""

    identifiers: tuple[str, ...]
    preferred_key: str


def identifier(kind: str, value: str | None) -> str | None:
    return f"{kind}:{value}" if value else None


def claim(preferred_key: str, *identifiers: str | None) -> IdentityClaim:
    """A claim of the given identifiers (empty ones dropped, each once, order kept)."""
    return IdentityClaim(tuple(dict.fromkeys(i for i in identifiers if i)), preferred_key)
