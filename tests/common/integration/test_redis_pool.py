"""A burst of concurrent commands in one process larger than its Redis connection pool waits for connections
instead of failing: redis-py's default pool raised `MaxConnectionsError` at its 101st connection in use, which
answered an agent's heartbeat 503 `cache_unavailable` while the router offered a queue of 200 at once."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from parley_common.redis import MAX_CONNECTIONS
from parley_common.settings import InfraSettings


async def test_more_concurrent_commands_than_connections_all_succeed(infra_settings: InfraSettings,
                                                                     redis: Redis) -> None:
    key = f"{infra_settings.redis_prefix()}pool-test:empty"
    # each blocking pop holds its connection for the whole timeout, so all of them are in use at once
    answers = await asyncio.gather(*(redis.blpop([key], timeout=0.2) for _ in range(MAX_CONNECTIONS + 20)))
    assert answers == [None] * (MAX_CONNECTIONS + 20)
