"""Redis through redis-py's asyncio client."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from parley_common import round_trips
from parley_common.metrics import TimedRedis


def redis_client(url: str, service: str = "unknown", **options: Any) -> Redis:
    """Every command timed under `service` (parley_common.metrics); `options` are TLS and credentials
    (parley_common.connections.redis_client_options)."""
    client = TimedRedis.from_url(url, decode_responses=True, health_check_interval=30, **options,
                                 **round_trips.redis_options())
    assert isinstance(client, TimedRedis)  # from_url builds an instance of the class it is called on
    client.metrics_service = service
    return client
