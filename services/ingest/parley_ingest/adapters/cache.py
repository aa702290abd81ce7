"""Ingest's Redis round trips, shared by the webhooks in flight (parley_common.batching): the reads made in one
event-loop turn — de-duplication marks and cached identity ranks, of one webhook or of many — are one `MGET`;
the script calls made in one turn (marking what was published, caching ranks) are one pipeline, or the call itself
when it is alone (parley_common.shared_scripts). Each caller gets its own answer and decides what a failure means
for it (adapters/dedup.py, adapters/identities.py)."""

from __future__ import annotations

from redis.asyncio import Redis

from parley_common.batching import TickBatcher
from parley_common.shared_scripts import SharedScripts


class SharedCache(SharedScripts):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._reads: TickBatcher[list[str], list[str | None]] = TickBatcher(self._get_many)

    async def get(self, keys: list[str]) -> list[str | None]:
        """The value of each key (the client decodes answers: parley_common.redis), in order."""
        return await self._reads.submit(keys) if keys else []

    async def _get_many(self, reads: list[list[str]]) -> list[list[str | None]]:
        wanted = list(dict.fromkeys(key for keys in reads for key in keys))
        found = {key: None if value is None else str(value)  # decoded already: str() only types it
                 for key, value in zip(wanted, await self._redis.mget(wanted), strict=True)}
        return [[found[key] for key in keys] for keys in reads]
