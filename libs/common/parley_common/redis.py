"""Redis through redis-py's asyncio client."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from parley_common import round_trips


def redis_client(url: str, **options: Any) -> Redis:
    """`options` are TLS and credentials (parley_common.connections.redis_client_options)."""
    return Redis.from_url(url, decode_responses=True, health_check_interval=30, **options,
                          **round_trips.redis_options())
