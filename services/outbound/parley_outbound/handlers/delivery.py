"""Calling the provider: per-sender rate limit, bounded retries with exponential backoff and jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from parley_common.channel_catalogue import facts as channel_facts
from parley_common.channels import AnyChannel
from parley_common.events.common import ChannelType
from parley_outbound.adapters.providers.base import ChannelAdapter, ProviderFailure, SendResult
from parley_outbound.adapters.ratelimit import RateLimiter
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import backoff_seconds
from parley_outbound.settings import OutboundSettings

MAX_RETRY_AFTER_SECONDS = 60.0


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

    async def send(self, channel: AnyChannel, message: Outgoing) -> SendResult:
        """The provider's result, or the last ProviderFailure once retries are exhausted or pointless."""
        adapter = self.adapters[channel.type]
        attempt = 0
        while True:
            await self.limiter.acquire(channel.id, self.rate_for(channel))
            try:
                return await adapter.send(channel, message)
            except ProviderFailure as failure:
                attempt += 1
                if not failure.outcome.retry or attempt >= self.settings.max_attempts:
                    raise
                await asyncio.sleep(self._delay(attempt - 1, failure))

    def _delay(self, attempt: int, failure: ProviderFailure) -> float:
        computed = backoff_seconds(attempt, self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds,
                                   self.jitter())
        asked = failure.outcome.retry_after_seconds
        return min(max(computed, asked or 0.0), MAX_RETRY_AFTER_SECONDS)
