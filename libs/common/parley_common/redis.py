"""Redis through redis-py's asyncio client."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from parley_common import round_trips
from parley_common.metrics import TimedRedis

# A command waits for a free connection when this many are in use, rather than failing at once: redis-py's default
# pool raises `MaxConnectionsError` instead, so a burst of concurrent commands in one process (the router offering
# a queue of 200 to an agent who just came online, each offer a check-and-take of its own) failed the requests that
# met it — an agent's heartbeat answered 503 `cache_unavailable` while Redis itself was idle.
MAX_CONNECTIONS = 100
CONNECTION_WAIT_SECONDS = 5.0  # a pool dry for this long is a cache that does not answer: cache_unavailable


def redis_client(url: str, service: str = "unknown", **options: Any) -> Redis:
    """Every command timed under `service` (parley_common.metrics); `options` are TLS and credentials
    (parley_common.connections.redis_client_options)."""
    pool = BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=CONNECTION_WAIT_SECONDS,
                                           decode_responses=True, health_check_interval=30, **options,
                                           **round_trips.redis_options())
    client = TimedRedis.from_pool(pool)  # the client closes its pool with it
    assert isinstance(client, TimedRedis)  # from_pool builds an instance of the class it is called on
    client.metrics_service = service
    return client
