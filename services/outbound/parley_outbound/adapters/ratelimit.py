"""A token bucket per sender (channel) in Redis, shared by all replicas: WhatsApp defaults to 80 msg/s per number.

The bucket is refilled lazily in one Lua script, so concurrent replicas never over-spend it."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

# KEYS[1] bucket; ARGV: rate per second, burst. Redis's own clock, so replicas agree. Returns 0 when a token
# was taken, else the milliseconds until the next one.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_TAKE)

    async def acquire(self, sender: str, rate_per_second: float, burst: float | None = None) -> None:
        """Wait until `sender` may send one more message. The default burst is a tenth of a second's worth,
        so a backlog drains at the configured rate rather than in a spike."""
        key = f"{self._prefix}outbound:bucket:{sender}"
        burst = burst or max(1.0, rate_per_second / 10)
        while True:
            wait_ms = int(await self._script(keys=[key], args=[rate_per_second, burst]))
            if wait_ms <= 0:
                return
            await asyncio.sleep(wait_ms / 1000)
