"""Redis de-duplication marks: checked before publishing, set (SET NX EX) only after Kafka acknowledged."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)
# One round trip for a whole batch: SET key 1 NX EX ttl for every key.
_MARK_ALL = """
for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'NX', 'EX', ARGV[1]) end
return #KEYS
"""


class DedupStore:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._mark_all = redis.register_script(_MARK_ALL)

    async def already_seen(self, keys: Sequence[str]) -> list[bool]:
        """Which keys are marked. Redis down → none are: publishing twice is safe (consumers are idempotent
        and event ids are stable), refusing or losing a message is not."""
        if not keys:
            return []
        try:
            values = await self._redis.mget(list(keys))
        except (RedisError, OSError) as exc:
            log.warning("dedup_check_unavailable", error=type(exc).__name__)
            return [False] * len(keys)
        return [value is not None for value in values]

    async def mark(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._mark_all(keys=list(keys), args=[self._ttl])
        except (RedisError, OSError) as exc:
            # Already published: a later retry becomes a duplicate that consumers ignore, never a loss.
            log.warning("dedup_mark_failed", error=type(exc).__name__, keys=len(keys))
