"""Redis: whether outbound's projections in the cache (window facts, blocked identities, contacts' custom fields)
are complete. Redis is a cache: restarted with nothing kept, it has lost them, and a reply inside an open window
would read "no customer message" and be refused. The marker is written by the rebuild (handlers/
projection_rebuild.py) once the projections were rebuilt; its absence is the loss. A cache that restarts during a
rebuild loses the rebuild's lease with it, and the rebuild's finish (a compare-and-set on the lease) then marks
nothing: the empty cache is rebuilt again."""

from __future__ import annotations

from redis.asyncio import Redis

READY = "ready"

# KEYS[1] the lease, KEYS[2] the marker; ARGV[1] the rebuild's token. Marks the projections complete only when this
# rebuild still holds its lease (a cache that restarted meanwhile holds none: what was written before is gone).
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], 'ready')
redis.call('DEL', KEYS[1])
return 1
"""
# KEYS[1] the lease; ARGV[1] the token: a failed rebuild gives its lease back (the next try need not wait it out).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
# KEYS[1] the lease; ARGV: the token, milliseconds. Extends this rebuild's lease; 0 when it lost it.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class ProjectionsRebuilding(Exception):
    """The cache lost outbound's projections and they are being rebuilt: a send that needs them is answered
    `window_facts_rebuilding` (retryable), never refused for a window the cache merely forgot."""


class ProjectionMarker:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.key = f"{prefix}outbound:projections:ready"
        self._lease = f"{prefix}outbound:projections:rebuilding"
        self._finish = redis.register_script(_FINISH)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def ready(self) -> bool:
        return await self._redis.get(self.key) == READY

    async def take_lease(self, token: str, seconds: float) -> bool:
        """One replica rebuilds at a time; the lease ends by itself when that replica dies."""
        return bool(await self._redis.set(self._lease, token, nx=True, px=round(seconds * 1000)))

    async def renew_lease(self, token: str, seconds: float) -> bool:
        return bool(await self._renew(keys=[self._lease], args=[token, round(seconds * 1000)]))

    async def release_lease(self, token: str) -> None:
        await self._release(keys=[self._lease], args=[token])

    async def finish(self, token: str) -> bool:
        """False when the cache lost the lease meanwhile (restarted): the rebuild is to be done again."""
        return bool(await self._finish(keys=[self._lease, self.key], args=[token]))
