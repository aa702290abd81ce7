"""Which key each customer identifier stands for: MongoDB keeps it (adapters/identity_records.py, the source of
truth), Redis caches it (read-through, `<prefix>ingest:identity:<tenant>:<channel>:rank:<sha256>` → the key's
rank, with an expiry).

One webhook's claims cost one cache round trip when the cache knows each claim's identifiers under one key (the
hot path: no database). Otherwise the claims it could not settle cost one batched database read and, when
something is new or linked, one write — made before the events are published — then one cache write. A write
another writer raced (a concurrent webhook for the same new customer) is read again and decided anew, so both
end on one key. A claim that links identifiers known under two keys joins them from then on: later events use
the older key; the events already published under the younger one stay where they are."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence

import structlog
from pymongo.errors import PyMongoError
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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


class IdentityStore:
    def __init__(self, redis: Redis, records: IdentityRecords, prefix: str, *, cache_ttl_seconds: int,
                 database_timeout_seconds: float) -> None:
        self._redis = redis
        self._records = records
        self._prefix = prefix
        self._ttl = cache_ttl_seconds
        self._database_timeout = database_timeout_seconds
        self._cache_sha = redis.register_script(_CACHE_OLDEST).sha

    async def keys_for(self, claims: Sequence[ScopedClaim]) -> list[str]:
        """The customer key of each claim, in order."""
        if not claims:
            return []
        cached = await self._cached([identifier for claim in claims for identifier in claim.identifiers()])
        keys = [settled_key(claim, cached) for claim in claims]
        unsettled = [claim for claim, key in zip(claims, keys, strict=True) if key is None]
        if unsettled:
            resolution = await self._recorded(unsettled, cached)
            await self._cache(resolution.ranks)
            resolved = iter(resolution.keys)
            keys = [key if key is not None else next(resolved) for key in keys]
        return [key for key in keys if key is not None]

    async def _recorded(self, claims: list[ScopedClaim], cached: dict[Scoped, str]) -> Resolution:
        """The claims resolved against the database, every new identifier and link recorded there; what the cache
        knows and the database does not (restored from an older backup) is recorded again, not reinvented."""
        born_ms = time.time_ns() // 1_000_000
        try:
            # this webhook's budget: its calls are shared with other webhooks' (IdentityRecords), each bounded too
            async with asyncio.timeout(self._database_timeout):
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

    async def _cached(self, identifiers: list[Scoped]) -> dict[Scoped, str]:
        try:
            answers = await self._redis.mget([self._key(identifier) for identifier in identifiers])
        except (RedisError, OSError) as exc:
            log.warning("identity_cache_unavailable", error=type(exc).__name__)
            raise IdentityStoreUnavailable("cache") from None
        return {identifier: str(answer)  # the client decodes answers (parley_common.redis)
                for identifier, answer in zip(identifiers, answers, strict=True) if answer is not None}

    async def _cache(self, ranks: dict[Scoped, str]) -> None:
        keys = [self._key(identifier) for identifier in ranks]
        args: list[str | int] = [self._ttl, *ranks.values()]
        try:
            try:
                await self._redis.evalsha(self._cache_sha, len(keys), *keys, *args)
            except NoScriptError:  # a new or restarted Redis: load the script once, then again
                await self._redis.script_load(_CACHE_OLDEST)
                await self._redis.evalsha(self._cache_sha, len(keys), *keys, *args)
        except (RedisError, OSError) as exc:
            log.warning("identity_cache_unavailable", error=type(exc).__name__)
            raise IdentityStoreUnavailable("cache") from None

    def _key(self, scoped: Scoped) -> str:
        tenant_id, channel_id, identifier = scoped
        # provider ids are hashed: bounded keys, no separator games
        return (f"{self._prefix}ingest:identity:{tenant_id}:{channel_id}:rank:"
                f"{hashlib.sha256(identifier.encode()).hexdigest()}")
