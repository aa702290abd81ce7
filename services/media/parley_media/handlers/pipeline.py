"""Accepting bytes: sniff the real type, apply the channel's limits, hash, store once per (tenant, sha256),
record the metadata, announce it. Shared by downloads, email attachments and uploads.

Write order (so nothing is ever half-stored): the record exists as `pending` first; then this media id is
added to the blob's users; then the object is written (once per content); only then is the record `stored`.
A crash anywhere leaves a pending record that a retry resumes or the sweeper cleans up."""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO
from uuid import NAMESPACE_URL, uuid5

from parley_common.clock import Clock
from parley_common.events.media import MediaFailed, MediaStored
from parley_common.kafka import EventPublisher
from parley_common.topics import MEDIA_EVENTS
from parley_media import metrics
from parley_media.adapters.blobstore import BlobStore
from parley_media.adapters.media_repository import BlobRef, MediaRepository
from parley_media.adapters.thumbnails import THUMBNAIL_MIME, make_thumbnail
from parley_media.domain import limits
from parley_media.domain.model import MediaState, expires_at
from parley_media.domain.sniffing import SNIFF_BYTES, kind_of, sniff

HASH_CHUNK = 1024 * 1024
UPLOAD_KEY_PREFIX = "upload:"  # the event key of an upload, which has no customer


def thumbnail_key(blob_key: str) -> str:
    return f"{blob_key}.thumb"


@dataclass(frozen=True)
class Origin:
    """What is known about an attachment before its bytes are looked at."""

    media_id: str
    tenant_id: str
    channel_id: str
    channel_type: str
    direction: limits.Direction
    received_at: datetime
    correlation_id: str
    external_user_id: str | None = None
    provider_message_id: str | None = None
    attachment_id: str | None = None
    file_name: str | None = None
    declared_mime: str | None = None
    uploaded_by: str | None = None
    part: dict[str, Any] | None = None  # the provider's reference of an inbound attachment (a retry fetches it)

    def record_fields(self, retention_days: float) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id, "channel_id": self.channel_id, "channel_type": self.channel_type,
            "direction": self.direction.value, "external_user_id": self.external_user_id,
            "conversation_key": (f"{self.tenant_id}|{self.channel_id}|{self.external_user_id}"
                                 if self.external_user_id else None),
            "provider_message_id": self.provider_message_id, "attachment_id": self.attachment_id,
            "file_name": self.file_name, "declared_mime": self.declared_mime, "uploaded_by": self.uploaded_by,
            "part": self.part,
            "correlation_id": self.correlation_id, "received_at": self.received_at,
            "expires_at": expires_at(self.received_at, retention_days),
        }


@dataclass(frozen=True)
class Inspection:
    mime: str
    size: int
    sha256: str
    verdict: limits.Verdict = field(default=limits.ACCEPTED)


def inspect(source: BinaryIO, size: int, declared: str | None, channel_type: str,
            direction: limits.Direction) -> Inspection:
    """Real type, limits and sha256 of `size` bytes in `source` (read in chunks, never whole)."""
    source.seek(0)
    head = source.read(SNIFF_BYTES)
    mime = sniff(head, declared)
    verdict = limits.check(channel_type, direction, mime, size)
    digest = hashlib.sha256(head)
    while chunk := source.read(HASH_CHUNK):
        digest.update(chunk)
    return Inspection(mime, size, digest.hexdigest(), verdict)


class MediaPipeline:
    def __init__(self, repo: MediaRepository, blobs: BlobStore, publisher: EventPublisher, clock: Clock,
                 retention_days: float) -> None:
        self.repo = repo
        self.blobs = blobs
        self.publisher = publisher
        self.clock = clock
        self.retention_days = retention_days
        self._writing: dict[str, asyncio.Future[bool]] = {}

    async def open(self, origin: Origin) -> dict[str, Any]:
        return await self.repo.open_pending(origin.media_id, origin.record_fields(self.retention_days))

    async def store(self, origin: Origin, source: BinaryIO, seen: Inspection) -> dict[str, Any]:
        """Store accepted bytes for an already opened record; answers the stored fields."""
        ref = await self.repo.reference_blob(origin.tenant_id, seen.sha256, origin.media_id)
        has_thumbnail = ref.has_thumbnail if ref.ready else await self._write_blob(ref, source, seen)
        fields = {
            "mime_type": seen.mime, "media_kind": kind_of(seen.mime), "size_bytes": seen.size,
            "sha256": seen.sha256, "blob_key": ref.key, "has_thumbnail": has_thumbnail,
            "stored_at": self.clock.now(),
        }
        await self.repo.mark_stored(origin.media_id, fields)
        return fields

    async def _write_blob(self, ref: BlobRef, source: BinaryIO, seen: Inspection) -> bool:
        """Write the blob once per process even when several records of one content arrive together (the same
        key written twice at once makes the two uploads' chunks collide); later callers wait for the first."""
        running = self._writing.get(ref.key)
        if running is not None:
            return await asyncio.shield(running)
        writing = asyncio.ensure_future(self._write_blob_once(ref, source, seen))
        self._writing[ref.key] = writing
        writing.add_done_callback(lambda _: self._writing.pop(ref.key, None))
        return await asyncio.shield(writing)  # a cancelled caller leaves the write going for the others

    async def _write_blob_once(self, ref: BlobRef, source: BinaryIO, seen: Inspection) -> bool:
        await self.blobs.put(ref.key, source, seen.size, seen.mime)
        thumbnail = await asyncio.to_thread(make_thumbnail, source) if seen.mime.startswith("image/") else None
        if thumbnail is not None:
            await self.blobs.put(thumbnail_key(ref.key), io.BytesIO(thumbnail), len(thumbnail), THUMBNAIL_MIME)
        await self.repo.mark_blob_ready(ref, thumbnail is not None)
        return thumbnail is not None

    async def announce_stored(self, record: dict[str, Any]) -> None:
        """`MediaStored`; an upload (no customer yet: a file to send, a saved reply's or a template header's) is
        keyed `upload:<media id>` so outbound learns it can send it."""
        metrics.STATES.labels("stored", "").inc()
        await self.publisher.publish(MediaStored(
            occurred_at=self.clock.now(), tenant_id=record["tenant_id"],
            correlation_id=record.get("correlation_id") or record["_id"], channel_id=record["channel_id"],
            external_user_id=record.get("external_user_id") or f"{UPLOAD_KEY_PREFIX}{record['_id']}",
            media_id=record["_id"], uploaded_by=record.get("uploaded_by"),
            provider_message_id=record.get("provider_message_id"), attachment_id=record.get("attachment_id"),
            file_name=record.get("file_name"), mime_type=record["mime_type"], size_bytes=record["size_bytes"],
            sha256=record["sha256"], expires_at=record["expires_at"], media_kind=record.get("media_kind"),
            has_thumbnail=bool(record.get("has_thumbnail")),
        ), MEDIA_EVENTS)

    async def fail(self, record: dict[str, Any], reason: str, detail: str | None, attempts: int) -> None:
        await self.repo.mark_failed(record["_id"], reason, detail, attempts)
        metrics.STATES.labels("failed", reason).inc()
        await self.announce_failed({**record, "failure_reason": reason, "attempts": attempts})

    async def announce_failed(self, record: dict[str, Any]) -> None:
        """`MediaFailed` for a customer's attachment (an upload's failure is its uploader's answer), under the same
        event id whenever it is announced: a redelivery announces it again, the first announcement may be lost."""
        if not record.get("external_user_id"):
            return
        await self.publisher.publish(MediaFailed(
            event_id=uuid5(NAMESPACE_URL, f"parley:media:{record['_id']}:failed"),
            occurred_at=self.clock.now(), tenant_id=record["tenant_id"],
            correlation_id=record.get("correlation_id") or record["_id"], channel_id=record["channel_id"],
            external_user_id=record["external_user_id"], media_id=record["_id"],
            provider_message_id=record.get("provider_message_id"), attachment_id=record.get("attachment_id"),
            reason=record.get("failure_reason") or "refused", attempts=int(record.get("attempts") or 0),
        ), MEDIA_EVENTS)

    async def accept(self, origin: Origin, source: BinaryIO, size: int, declared: str | None) -> dict[str, Any]:
        """Open (if needed), inspect and store; answers the record after. A refused file fails the record."""
        record = await self.open(origin)
        if record["state"] == MediaState.FAILED.value:  # failed before (a redelivery): announced again
            await self.announce_failed(record)
        if record["state"] != MediaState.PENDING.value:
            return record  # done before (a redelivery): nothing to redo
        seen = await asyncio.to_thread(inspect, source, size, declared, origin.channel_type, origin.direction)
        if not seen.verdict.ok:
            await self.fail(record, seen.verdict.reason or "refused", seen.verdict.detail, record["attempts"] + 1)
            return {**record, "state": MediaState.FAILED.value, "failure_reason": seen.verdict.reason}
        fields = await self.store(origin, source, seen)
        return {**record, **fields, "state": MediaState.STORED.value}
