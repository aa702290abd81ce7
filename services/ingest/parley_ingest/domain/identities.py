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


# Which key is older, as one string that sorts by birth: milliseconds since the epoch (fixed width), then the key.
# Stored per identifier, it is lowered with MongoDB's `$min` (a link to an older key), so concurrent writers agree
# without a transaction; ties of the same millisecond fall to the smaller key, the same for every writer.
_BORN_DIGITS = 16


def rank(born_ms: int, key: str) -> str:
    return f"{born_ms:0{_BORN_DIGITS}d}:{key}"


def key_of(a_rank: str) -> str:
    return a_rank[_BORN_DIGITS + 1:]


Scoped = tuple[str, str, str]
"""(tenant, channel, identifier): identifiers name customers per channel."""


@dataclass(frozen=True, slots=True)
class ScopedClaim:
    tenant_id: str
    channel_id: str
    claim: IdentityClaim

    def identifiers(self) -> list[Scoped]:
        return [(self.tenant_id, self.channel_id, identifier) for identifier in self.claim.identifiers]


@dataclass(frozen=True, slots=True)
class Resolution:
    """Each claim's key, in order, and what the store must be told: identifiers it does not hold yet (`new`) and
    those it holds under a younger key (`lowered`); `ranks` is every claimed identifier's rank afterwards."""

    keys: list[str]
    new: dict[Scoped, str]
    lowered: dict[Scoped, str]
    ranks: dict[Scoped, str]


def resolve(claims: list[ScopedClaim], stored: dict[Scoped, str], born_ms: int,
            remembered: dict[Scoped, str] | None = None) -> Resolution:
    """Each claim takes the oldest rank any of its identifiers holds (stored, or given by another claim of the
    batch), else a key born now (its preferred key); every identifier of the claim then holds that rank unless
    it holds an older one. Repeated until nothing changes, so claims of one batch that link each other (a
    message by phone and BSUID, a BSUID change) all end on the oldest of their keys. `remembered`: ranks the
    cache holds for identifiers the store lacks (a store restored from a backup older than them) — taken as
    known, and recorded again as new."""
    ranks = {**(remembered or {}), **stored}
    chosen: list[str] = []
    while True:
        before, chosen = dict(ranks), []
        for claim in claims:
            identifiers = claim.identifiers()
            known = [ranks[identifier] for identifier in identifiers if identifier in ranks]
            chosen.append(min(known) if known else rank(born_ms, claim.claim.preferred_key))
            for identifier in identifiers:
                if identifier not in ranks or chosen[-1] < ranks[identifier]:
                    ranks[identifier] = chosen[-1]
        if ranks == before:
            break
    claimed = {identifier for claim in claims for identifier in claim.identifiers()}
    return Resolution(
        keys=[key_of(a_rank) for a_rank in chosen],
        new={identifier: ranks[identifier] for identifier in claimed if identifier not in stored},
        lowered={identifier: ranks[identifier] for identifier in claimed
                 if identifier in stored and ranks[identifier] < stored[identifier]},
        ranks={identifier: ranks[identifier] for identifier in claimed})


def settled_key(claim: ScopedClaim, cached: dict[Scoped, str]) -> str | None:
    """The claim's key when the cache knows every identifier of it under one rank (nothing to record), else
    None: the store must be asked."""
    if not claim.claim.identifiers:
        return claim.claim.preferred_key
    ranks = {cached.get(identifier) for identifier in claim.identifiers()}
    only = ranks.pop() if len(ranks) == 1 else None
    return key_of(only) if only is not None else None
