"""Redis de-duplication marks: checked before publishing, set (SET NX EX) only after Kafka acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from redis.exceptions import RedisError

from parley_common.shared_scripts import ScriptCall
from parley_ingest.adapters.cache import SharedCache

log = structlog.get_logger(__name__)
# One round trip for a whole batch: SET key 1 NX EX ttl for every key.
_MARK_ALL = """
for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) end
return #KEYS
"""


class DedupUnavailable(Exception):
    """The duplicate check could not be made: Redis down, its connection pool exhausted, or slower than the bound.
    The webhook is answered 503 before anything is published (the provider retries), so overload sheds load
    instead of skipping de-duplication."""


class DedupStore:
    def __init__(self, cache: SharedCache, ttl_seconds: int, check_timeout_seconds: float) -> None:
        self._cache = cache
        self._ttl = ttl_seconds
        self._check_timeout = check_timeout_seconds
        self._mark_all = cache.script(_MARK_ALL)

    async def already_seen(self, keys: Sequence[str]) -> list[bool]:
        """Which keys are marked; DedupUnavailable when that cannot be known in time."""
        if not keys:
            return []
        try:
            async with asyncio.timeout(self._check_timeout):  # in this task: its read joins this turn's MGET
                values = await self._cache.get(list(keys))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("dedup_check_unavailable", error=type(exc).__name__, keys=len(keys))
            raise DedupUnavailable(type(exc).__name__) from None
        return [value is not None for value in values]

    async def mark(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._cache.call(ScriptCall(self._mark_all, list(keys), [self._ttl]))
        except (RedisError, OSError) as exc:
            # Already published: a later retry becomes a duplicate that consumers ignore, never a loss.
            log.warning("dedup_mark_failed", error=type(exc).__name__, keys=len(keys))
