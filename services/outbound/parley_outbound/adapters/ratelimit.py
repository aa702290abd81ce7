"""A token bucket per sender (channel) in Redis, shared by all replicas: WhatsApp defaults to 80 msg/s per number.

The bucket is refilled lazily in one Lua script, so concurrent replicas never over-spend it. Within a process the
sends waiting on one sender share the round trips: one script call takes as many tokens as there are waiters
(at most what the bucket holds), so a batch of concurrent sends costs one Redis call per refill, not one each.

Two lanes share each bucket: one-to-one messages (`Lane.PRIORITY`) and broadcasts (`Lane.BULK`). A priority
sender that finds the bucket empty stamps a `hold` on it until its next token is due; the bulk lane takes nothing
while a hold stands, in any replica, so agents' replies never queue behind a broadcast. A provider's throttling
answer holds the bulk lane of that sender too (`hold_bulk`): the broadcast slows, the agents do not."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from redis.asyncio import Redis

# KEYS[1] bucket; ARGV: rate per second, burst, tokens wanted, lane. Redis's own clock, so replicas agree. Returns
# {tokens granted, milliseconds until the next try when fewer than wanted were granted}.
_TAKE = """
local rate, burst, wanted, lane = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'hold')
local tokens, at, hold = tonumber(state[1]), tonumber(state[2]), tonumber(state[3]) or 0
if tokens == nil then tokens, at = burst, now end
if lane == 'bulk' and now < hold then return {0, math.ceil(hold - now)} end
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
local wait = 0
if granted < wanted then
  wait = math.ceil((1 - tokens) * 1000 / rate)
  if lane == 'priority' then hold = math.max(hold, now + wait + math.ceil(1000 / rate)) end
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now, 'hold', hold)
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(burst * 1000 / rate, hold - now)) + 1000)
return {granted, wait}
"""
# KEYS[1] bucket; ARGV[1] milliseconds: the bulk lane takes no token for that long (a provider throttled us).
_HOLD_BULK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local until_ms = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('HGET', KEYS[1], 'hold')) or 0
if until_ms > hold then redis.call('HSET', KEYS[1], 'hold', until_ms) end
local keep = tonumber(ARGV[1]) + 1000
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
"""


class Lane(StrEnum):
    PRIORITY = "priority"  # one-to-one messages: agents, bots, integrations
    BULK = "bulk"  # broadcasts: only the tokens the priority lane leaves"""


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
        self._hold_bulk = redis.register_script(_HOLD_BULK)
        self._queues: dict[tuple[str, Lane], _Queue] = {}

    def _key(self, sender: str) -> str:
        return f"{self._prefix}outbound:bucket:{sender}"

    async def acquire(self, sender: str, rate_per_second: float, burst: float | None = None,
                      lane: Lane = Lane.PRIORITY) -> None:
        """Wait until `sender` may send one more message on `lane`. The default burst is a tenth of a second's
        worth, so a backlog drains at the configured rate rather than in a spike."""
        queue = self._queues.get((sender, lane))
        if queue is None:
            queue = self._queues[sender, lane] = _Queue(rate_per_second, burst or max(1.0, rate_per_second / 10))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.waiters.append(waiter)
        if queue.pump is None:
            queue.pump = asyncio.create_task(self._serve(sender, lane, queue))
        await waiter

    async def hold_bulk(self, sender: str, seconds: float) -> None:
        """The provider throttled this sender: broadcasts take no token from it for `seconds` (agents still do)."""
        await self._hold_bulk(keys=[self._key(sender)], args=[max(1, round(seconds * 1000))])

    async def _serve(self, sender: str, lane: Lane, queue: _Queue) -> None:
        key = self._key(sender)
        try:
            while queue.waiters:
                wanted = len(queue.waiters)
                granted, wait_ms = await self._script(keys=[key], args=[queue.rate, queue.burst, wanted, lane.value])
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
                self._queues.pop((sender, lane), None)


def _release(waiters: deque[asyncio.Future[None]]) -> None:
    """Hand a token to the first waiter still waiting (a cancelled send's token goes to the next one)."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return
