"""Calling the provider: per-sender rate limit (one-to-one messages before broadcasts), bounded retries with
exponential backoff and jitter. A throttling answer (WhatsApp 130429, HTTP 429, …) on either lane holds the
sender's broadcast lane a while: the provider says the number is over its rate, and the agents go first."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from parley_common.channel_catalogue import facts as channel_facts
from parley_common.channels import AnyChannel
from parley_common.events.common import ChannelType
from parley_outbound.adapters.providers.base import ChannelAdapter, ProviderFailure, SendResult
from parley_outbound.adapters.ratelimit import Lane, RateLimiter
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import backoff_seconds
from parley_outbound.settings import OutboundSettings

MAX_RETRY_AFTER_SECONDS = 60.0
THROTTLED = "rate_limited"  # the sender (number) is over the provider's rate; not pair_rate_limited (one customer)


@dataclass
class Delivery:
    adapters: Mapping[ChannelType, ChannelAdapter]
    limiter: RateLimiter
    settings: OutboundSettings
    jitter: Callable[[], float] = random.random

    def rate_for(self, channel: AnyChannel) -> float:
        overrides = self.settings.channel_rate_per_second
        by_type = self.settings.rate_per_second.get(channel.type.value)
        return overrides.get(channel.id) or by_type or channel_facts(channel.type).send_rate_per_second

    async def send(self, channel: AnyChannel, message: Outgoing, lane: Lane = Lane.PRIORITY) -> SendResult:
        """The provider's result, or the last ProviderFailure once retries are exhausted or pointless."""
        adapter = self.adapters[channel.type]
        attempts = self.settings.max_attempts if lane is Lane.PRIORITY else self.settings.broadcast_max_attempts
        attempt = 0
        while True:
            await self.limiter.acquire(channel.id, self.rate_for(channel), lane=lane)
            try:
                return await adapter.send(channel, message)
            except ProviderFailure as failure:
                attempt += 1
                delay = self._delay(attempt - 1, failure)
                if failure.outcome.reason == THROTTLED:
                    await self.limiter.hold_bulk(channel.id, max(delay, self.settings.broadcast_throttle_hold_seconds))
                if not failure.outcome.retry or attempt >= attempts:
                    raise
                await asyncio.sleep(delay)

    def _delay(self, attempt: int, failure: ProviderFailure) -> float:
        computed = backoff_seconds(attempt, self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds,
                                   self.jitter())
        asked = failure.outcome.retry_after_seconds
        return min(max(computed, asked or 0.0), MAX_RETRY_AFTER_SECONDS)
