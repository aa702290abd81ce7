"""Provider-side copies of our attachments: uploaded once per (channel, media id), then reused by id.

A broadcast of one file to a thousand customers must upload it once. The provider's id is kept in Redis for
less than the provider keeps the file (WhatsApp uploads live 30 days, Messenger reusable attachments 90 days),
and the first sender of a file holds a lock while the others wait for the id it stores: an asyncio lock within
this process (no Redis polling for local waiters), a Redis lock with a lease across replicas."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta

from redis.asyncio import Redis

from parley_outbound.adapters.media_fetch import MediaFetcher

WHATSAPP_TTL = timedelta(days=28)  # WhatsApp deletes uploaded media after 30 days
MESSENGER_TTL = timedelta(days=80)  # attachment ids expire after 90 days
TELEGRAM_TTL = timedelta(days=28)  # file ids do not expire; our media does after 30 days by default

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Uploaded:
    provider_id: str  # WhatsApp media id, Messenger attachment_id, Telegram file_id
    file_name: str | None = None  # kept for documents sent again by id


def _parse(raw: bytes | str | None) -> Uploaded | None:
    """Fields a newer release added are ignored: a rollback still reuses the uploads it stored."""
    if raw is None:
        return None
    stored = json.loads(raw)
    return Uploaded(stored["provider_id"], stored.get("file_name"))


class UploadCache:
    def __init__(self, redis: Redis, prefix: str, lock_seconds: float = 120.0, poll_seconds: float = 0.05) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lock_seconds = lock_seconds  # an upload of 100 MB must fit in it; a dead holder frees it after
        self._poll = poll_seconds
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._release = redis.register_script(_RELEASE)

    def _key(self, channel_id: str, media_id: str) -> str:
        return f"{self._prefix}outbound:upload:{channel_id}:{media_id}"

    async def get(self, channel_id: str, media_id: str) -> Uploaded | None:
        return _parse(await self._redis.get(self._key(channel_id, media_id)))

    async def forget(self, channel_id: str, media_id: str) -> None:
        await self._redis.delete(self._key(channel_id, media_id))

    async def once(self, channel_id: str, media_id: str, ttl: timedelta,
                   produce: Callable[[], Awaitable[Uploaded]]) -> Uploaded:
        """The cached upload, or the one `produce` makes — one producer at a time per file and channel."""
        key = self._key(channel_id, media_id)
        cached = _parse(await self._redis.get(key))
        if cached is not None:
            return cached
        lock = self._local.setdefault(key, asyncio.Lock())
        async with lock, self._replica_lock(key):
            cached = _parse(await self._redis.get(key))
            if cached is not None:
                return cached
            uploaded = await produce()
            await self._redis.set(key, json.dumps(asdict(uploaded)), ex=ttl)
            return uploaded

    @asynccontextmanager
    async def _replica_lock(self, key: str) -> AsyncIterator[None]:
        """Held while uploading; a waiter goes on as soon as the id appears (or the lease ran out)."""
        lock_key, token = f"{key}:lock", uuid.uuid4().hex
        deadline = time.monotonic() + self._lock_seconds
        acquired = False
        while time.monotonic() < deadline:
            acquired = bool(await self._redis.set(lock_key, token, nx=True, px=int(self._lock_seconds * 1000)))
            if acquired or await self._redis.exists(key):
                break
            await asyncio.sleep(self._poll)
        try:
            yield
        finally:
            if acquired:
                await self._release(keys=[lock_key], args=[token])


@dataclass(frozen=True)
class ProviderMedia:
    """What adapters need to send stored attachments as files: the bytes, and the provider ids already made."""

    fetcher: MediaFetcher
    uploads: UploadCache
