"""Redis: messages the HTTP API accepted that the send consumer has not stored yet.

`POST /v1/messages` answers 202 without a database write: the send consumer stores the message with the rest of
its batch (one bulk write instead of a single insert on the request path, where the local database's queueing
dominated the latency). Until then `GET /v1/messages/{id}` answers from this note, so a client polling right
after the 202 sees `queued`, never a 404. The stored document takes precedence as soon as it exists."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from parley_common.batching import TickBatcher

KEEP_SECONDS = 3600  # the consumer stores a message within seconds; an hour covers a long consumer outage


class PendingMessages:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        # the notes of the sends accepted together in one round trip (parley_common.batching)
        self._notes: TickBatcher[tuple[str, str], None] = TickBatcher(self._set_many)

    def _key(self, tenant_id: str, message_id: str) -> str:
        return f"{self._prefix}outbound:pending:{tenant_id}:{message_id}"

    async def remember(self, tenant_id: str, message_id: str, view: dict[str, Any]) -> None:
        await self._notes.submit((self._key(tenant_id, message_id), json.dumps(view)))

    async def _set_many(self, notes: list[tuple[str, str]]) -> list[None]:
        if len(notes) == 1:  # alone: the command itself, not a pipeline of one
            await self._redis.set(*notes[0], ex=KEEP_SECONDS)
        else:
            async with self._redis.pipeline(transaction=False) as pipeline:
                for key, value in notes:
                    pipeline.set(key, value, ex=KEEP_SECONDS)
                await pipeline.execute()
        return [None] * len(notes)

    async def forget(self, tenant_id: str, message_id: str) -> None:
        await self._redis.delete(self._key(tenant_id, message_id))

    async def get(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key(tenant_id, message_id))
        return json.loads(raw) if raw else None
