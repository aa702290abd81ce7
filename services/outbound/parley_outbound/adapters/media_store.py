"""Redis: what outbound knows about stored attachments (type, size, expiry), kept from parley.media.events.v1,
so a send can refuse a format or size the channel does not accept, or media already expired."""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from parley_outbound.catch_up import read_soon
from parley_outbound.domain.attachments import MediaFacts


class MediaStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, tenant_id: str, media_id: str) -> str:
        return f"{self._prefix}outbound:media:{tenant_id}:{media_id}"

    async def stored(self, tenant_id: str, media_id: str, mime_type: str, size_bytes: int,
                     expires_at: datetime) -> None:
        key = self._key(tenant_id, media_id)
        await self._redis.hset(key, mapping={"mime": mime_type, "size": size_bytes,
                                             "expires": expires_at.timestamp()})
        await self._redis.expireat(key, int(expires_at.timestamp()) + 86_400)  # forget a day after expiry

    async def expired(self, tenant_id: str, media_id: str) -> None:
        await self._redis.hset(self._key(tenant_id, media_id), "expired", "1")

    async def get(self, tenant_id: str, media_id: str) -> MediaFacts | None:
        raw = await self._redis.hgetall(self._key(tenant_id, media_id))
        fields = {str(name): str(value) for name, value in raw.items()}
        if "mime" not in fields:
            return None
        return MediaFacts(mime_type=fields["mime"], size_bytes=int(fields["size"]),
                          expires_at=datetime.fromtimestamp(float(fields["expires"]), UTC),
                          expired=fields.get("expired") == "1")

    async def get_soon(self, tenant_id: str, media_id: str, within: float) -> MediaFacts | None:
        """`get`, waiting up to `within` seconds for facts not projected yet: media answers an upload once its
        `MediaStored` is on the topic, so a send made right after the upload may arrive before the projection."""
        return await read_soon(lambda: self.get(tenant_id, media_id), lambda facts: facts is not None, within)
