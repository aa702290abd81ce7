"""Which key each customer identifier stands for: MongoDB keeps it (adapters/identity_records.py, the source of
truth), Redis caches it (read-through, `<prefix>ingest:identity:<tenant>:<channel>:rank:<sha256>` → the key's
rank, with an expiry).

One webhook's claims cost one cache read — shared with its duplicate check and the other webhooks in flight
(adapters/cache.py) — when the cache knows each claim's identifiers under one key (the hot path: no database).
Otherwise the claims it could not settle go to the database before the events are published: when the cache
knows none of their identifiers (most likely someone new) they are inserted straight away — one write, no read;
else, or when such an insert met an identifier stored already, one batched read and, when something is new or
linked, one write. The ranks are cached afterwards, in the same round trip
as the de-duplication marks (or alone when publishing failed: a link the database holds must reach the cache). A write
another writer raced (a concurrent webhook for the same new customer) is read again and decided anew, so both
end on one key. A claim that links identifiers known under two keys joins them from then on: later events use
the older key; the events already published under the younger one stay where they are."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from parley_common.shared_scripts import ScriptCall
from parley_ingest.adapters.cache import SharedCache
from parley_ingest.adapters.identity_records import IdentityRecords
from parley_ingest.domain.identities import Resolution, Scoped, ScopedClaim, resolve, settled_key

log = structlog.get_logger(__name__)

# Cache only what is at least as old as what is cached: a reader that fetched a rank before a link lowered it
# must not put the younger key back.
_CACHE_OLDEST = """
for i = 1, #KEYS do
  local cached = redis.call('GET', KEYS[i])
  if not cached or ARGV[i + 1] < cached then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
  else
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return #KEYS
"""
# Writers that keep losing races to others: give up after this many reads and let the provider retry.
ATTEMPTS = 5


class IdentityStoreUnavailable(Exception):
    """The cache or the database did not answer: publishing under a guessed key could split a customer, so the
    webhook is retried."""


@dataclass(frozen=True, slots=True)
class Keyed:
    """Each claim's key, in order, and the ranks to cache once the webhook's events are published (`remember`)."""

    keys: list[str]
    ranks: dict[Scoped, str]


class IdentityStore:
    def __init__(self, cache: SharedCache, records: IdentityRecords, prefix: str, *, cache_ttl_seconds: int,
                 database_timeout_seconds: float) -> None:
        self._cache = cache
        self._records = records
        self._prefix = prefix
        self._ttl = cache_ttl_seconds
        self._database_timeout = database_timeout_seconds
        self._cache_oldest = cache.script(_CACHE_OLDEST)

    async def cached(self, claims: Sequence[ScopedClaim]) -> dict[Scoped, str]:
        """What the cache knows of the claims' identifiers (one read, shared: adapters/cache.py)."""
        identifiers = list(dict.fromkeys(identifier for claim in claims for identifier in claim.identifiers()))
        try:
            answers = await self._cache.get([self._key(identifier) for identifier in identifiers])
        except (RedisError, OSError) as exc:
            log.warning("identity_cache_unavailable", error=type(exc).__name__)
            raise IdentityStoreUnavailable("cache") from None
        return {identifier: answer for identifier, answer in zip(identifiers, answers, strict=True)
                if answer is not None}

    async def keys_for(self, claims: Sequence[ScopedClaim], cached: dict[Scoped, str]) -> Keyed:
        """The customer key of each claim, in order: from `cached` (what `cached` answered) when it settles the
        claim, else from the database, every new identifier and link recorded there first."""
        keys = [settled_key(claim, cached) for claim in claims]
        unsettled = [claim for claim, key in zip(claims, keys, strict=True) if key is None]
        if not unsettled:
            return Keyed([key for key in keys if key is not None], {})
        resolution = await self._recorded(unsettled, cached)
        resolved = iter(resolution.keys)
        return Keyed([key if key is not None else next(resolved) for key in keys], resolution.ranks)

    async def remember(self, ranks: dict[Scoped, str]) -> None:
        """Cache the ranks (each only if at least as old as what is cached). Not raised: the database has them, a
        lost cache write costs a database read later."""
        if not ranks:
            return
        try:
            await self._cache.call(ScriptCall(self._cache_oldest, [self._key(identifier) for identifier in ranks],
                                              [self._ttl, *ranks.values()]))
        except (RedisError, OSError) as exc:
            log.warning("identity_cache_write_failed", error=type(exc).__name__, identifiers=len(ranks))

    async def _recorded(self, claims: list[ScopedClaim], cached: dict[Scoped, str]) -> Resolution:
        """The claims resolved against the database, every new identifier and link recorded there; what the cache
        knows and the database does not (restored from an older backup) is recorded again, not reinvented.

        Claims none of whose identifiers the cache knows are most likely someone new: their identifiers are
        inserted first, without reading; only when one of them exists already (a known customer the cache
        forgot, or a concurrent writer) is the database read and the claims decided anew — as after any raced
        write: an identifier this insert added under a key born now is then lowered to the older key."""
        born_ms = time.time_ns() // 1_000_000
        try:
            # this webhook's budget: its calls are shared with other webhooks' (IdentityRecords), each bounded too
            async with asyncio.timeout(self._database_timeout):
                if not any(identifier in cached for claim in claims for identifier in claim.identifiers()):
                    unknown = resolve(claims, {}, born_ms)
                    if await self._records.record(unknown.new, {}):
                        return unknown
                for _ in range(ATTEMPTS):
                    stored = await self._records.ranks({i for claim in claims for i in claim.identifiers()})
                    remembered = {i: rank for i, rank in cached.items() if i not in stored}
                    resolution = resolve(claims, stored, born_ms, remembered)
                    if await self._records.record(resolution.new, resolution.lowered):
                        return resolution
        except (PyMongoError, TimeoutError) as exc:
            log.warning("identity_database_unavailable", error=type(exc).__name__)
            raise IdentityStoreUnavailable("database") from None
        log.warning("identity_writes_kept_racing", attempts=ATTEMPTS)
        raise IdentityStoreUnavailable("database")

    def _key(self, scoped: Scoped) -> str:
        tenant_id, channel_id, identifier = scoped
        # provider ids are hashed: bounded keys, no separator games
        return (f"{self._prefix}ingest:identity:{tenant_id}:{channel_id}:rank:"
                f"{hashlib.sha256(identifier.encode()).hexdigest()}")
