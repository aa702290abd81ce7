"""Redis: messages the HTTP API accepted that the send consumer has not stored yet.

`POST /v1/messages` answers 202 without a database write: the send consumer stores the message with the rest of
its batch (one bulk write instead of a single insert on the request path, where the local database's queueing
dominated the latency). Until then `GET /v1/messages/{id}` answers from this note, so a client polling right
after the 202 sees `queued`, never a 404. The stored document takes precedence as soon as it exists."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

KEEP_SECONDS = 3600  # the consumer stores a message within seconds; an hour covers a long consumer outage


class PendingMessages:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, tenant_id: str, message_id: str) -> str:
        return f"{self._prefix}outbound:pending:{tenant_id}:{message_id}"

    async def remember(self, tenant_id: str, message_id: str, view: dict[str, Any]) -> None:
        await self._redis.set(self._key(tenant_id, message_id), json.dumps(view), ex=KEEP_SECONDS)

    async def forget(self, tenant_id: str, message_id: str) -> None:
        await self._redis.delete(self._key(tenant_id, message_id))

    async def get(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._key(tenant_id, message_id))
        return json.loads(raw) if raw else None
