"""Expiry: media older than the retention loses its bytes; the record stays as a tombstone (name, type, size)
and MediaExpired is published. Records left pending too long (a crash mid-upload or mid-download that nobody
resumed) are cleaned the same way and marked failed.

Safe with several replicas: each record is claimed with a conditional update that sets a lease, so two
sweepers never work on one record; a sweeper that dies mid-way leaves the lease to run out, and the next one
resumes — every step (release the reference, delete the object, write the tombstone) can be repeated."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog

from parley_common.events.media import MediaExpired
from parley_common.ids import new_id
from parley_common.topics import MEDIA_EVENTS
from parley_media import metrics
from parley_media.domain.model import MediaState
from parley_media.handlers.pipeline import MediaPipeline, thumbnail_key

log = structlog.get_logger(__name__)


class Sweeper:
    def __init__(self, pipeline: MediaPipeline, lease_seconds: float, pending_timeout_seconds: float,
                 owner: str | None = None) -> None:
        self.pipeline = pipeline
        self.lease = timedelta(seconds=lease_seconds)
        self.pending_timeout = timedelta(seconds=pending_timeout_seconds)
        self.owner = owner or new_id()

    async def sweep(self, limit: int = 1000) -> int:
        """Expire or clean up to `limit` records; answers how many."""
        done = 0
        while done < limit:
            now = self.pipeline.clock.now()
            record = await self.pipeline.repo.claim_due(now, now + self.lease, self.owner, now - self.pending_timeout)
            if record is None:
                break
            await self._process(record)
            done += 1
        return done

    async def run_forever(self, interval_seconds: float) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    log.info("media_swept", count=swept)
            except Exception:  # keep sweeping on the next round; the lease makes the item come back
                log.exception("media_sweep_failed")
            await asyncio.sleep(interval_seconds)

    async def _process(self, record: dict[str, Any]) -> None:
        repo = self.pipeline.repo
        abandoned = record["state"] == MediaState.PENDING.value
        if record["state"] == MediaState.STORED.value:
            await repo.mark_expiring(record["_id"], self.owner)
        key = record.get("blob_key") or await self._remember_key(record)
        if key is not None:
            await repo.release_blob(record["tenant_id"], record["sha256"], key, record["_id"])
            if not await repo.blob_key_in_use(key):  # keys are never reused: unused now means garbage forever
                await self.pipeline.blobs.delete(key)
                await self.pipeline.blobs.delete(thumbnail_key(key))
        now = self.pipeline.clock.now()
        if abandoned:
            await repo.finish_claim(record["_id"], self.owner, MediaState.FAILED,
                                    {"failure_reason": "abandoned", "blob_key": None})
            return
        if await repo.finish_claim(record["_id"], self.owner, MediaState.EXPIRED, {"expired_at": now}):
            metrics.STATES.labels("expired", "").inc()
            await self._announce(record, now)

    async def _remember_key(self, record: dict[str, Any]) -> str | None:
        """A pending record may hold a blob reference it never noted: note it before releasing, so a crash
        after the release still knows which object to check."""
        used = await self.pipeline.repo.blob_used_by(record["tenant_id"], record["_id"])
        if used is None:
            return None
        sha256, key = used
        await self.pipeline.repo.note_blob(record["_id"], sha256, key)
        record["sha256"] = sha256
        return key

    async def _announce(self, record: dict[str, Any], now: Any) -> None:
        if not record.get("external_user_id"):
            return
        await self.pipeline.publisher.publish(MediaExpired(
            occurred_at=now, tenant_id=record["tenant_id"],
            correlation_id=record.get("correlation_id") or record["_id"],
            channel_id=record["channel_id"], external_user_id=record["external_user_id"], media_id=record["_id"],
            provider_message_id=record.get("provider_message_id"), attachment_id=record.get("attachment_id"),
            file_name=record.get("file_name"), mime_type=record.get("mime_type"), size_bytes=record.get("size_bytes"),
        ), MEDIA_EVENTS)
