"""A Redis client whose connections note each send (a pipeline or a script call is one) by its first command:
tests of the round trips that callers of one event-loop turn share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from parley_common.round_trips import cache_command


@dataclass
class CountedRedis:
    client: Redis
    sent: list[str]  # the first command of each send, in order


def counted_redis(url: str) -> CountedRedis:
    sent: list[str] = []

    class CountedConnection(Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sent.append(cache_command(command))
            await super().send_packed_command(command, check_health)

    return CountedRedis(Redis.from_url(url, decode_responses=True, connection_class=CountedConnection), sent)
