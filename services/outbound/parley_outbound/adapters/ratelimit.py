"""A token bucket per sender (channel) in Redis, shared by all replicas: WhatsApp defaults to 80 msg/s per number.

The bucket is refilled lazily in one Lua script, so concurrent replicas never over-spend it. Within a process the
sends waiting on one sender share the round trips: one script call takes as many tokens as there are waiters
(at most what the bucket holds), so a batch of concurrent sends costs one Redis call per refill, not one each."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from redis.asyncio import Redis

# KEYS[1] bucket; ARGV: rate per second, burst, tokens wanted. Redis's own clock, so replicas agree. Returns
# {tokens granted, milliseconds until the next token when fewer than wanted were granted}.
_TAKE = """
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
local wait = 0
if granted < wanted then wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}
"""


@dataclass
class _Queue:
    """The sends of one process waiting for one sender's tokens, served in arrival order by one task."""

    rate: float
    burst: float
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    pump: asyncio.Task[None] | None = None


class RateLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_TAKE)
        self._queues: dict[str, _Queue] = {}

    async def acquire(self, sender: str, rate_per_second: float, burst: float | None = None) -> None:
        """Wait until `sender` may send one more message. The default burst is a tenth of a second's worth,
        so a backlog drains at the configured rate rather than in a spike."""
        queue = self._queues.get(sender)
        if queue is None:
            queue = self._queues[sender] = _Queue(rate_per_second, burst or max(1.0, rate_per_second / 10))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        if queue.pump is None:
            queue.pump = asyncio.create_task(self._serve(sender, queue))
        await waiter

    async def _serve(self, sender: str, queue: _Queue) -> None:
        key = f"{self._prefix}outbound:bucket:{sender}"
        try:
            while queue.waiters:
                wanted = len(queue.waiters)
                granted, wait_ms = await self._script(keys=[key], args=[queue.rate, queue.burst, wanted])
                for _ in range(int(granted)):
                    _release(queue.waiters)
                if int(wait_ms) > 0 and queue.waiters:
                    await asyncio.sleep(int(wait_ms) / 1000)
        except Exception as error:  # noqa: BLE001 - not swallowed: every waiter raises it (e.g. Redis unreachable)
            while queue.waiters:
                waiter = queue.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(error)
        finally:
            queue.pump = None
            if not queue.waiters:
                self._queues.pop(sender, None)


def _release(waiters: deque[asyncio.Future[None]]) -> None:
    """Hand a token to the first waiter still waiting (a cancelled send's token goes to the next one)."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
