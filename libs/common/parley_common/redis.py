"""Redis through redis-py's asyncio client."""

from __future__ import annotations

from redis.asyncio import Redis


def redis_client(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)
