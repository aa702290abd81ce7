"""Inbound attachments: download from the provider right away; on failure retry through
parley.media.retries.v1 with backoff; after the last attempt, MediaFailed plus a dead letter with the reason.
The inbound message itself is never held up: its offset is committed whatever happens to its media."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Any

import structlog

from parley_common.channels import Channels
from parley_common.events.dlq import DeadLetter
from parley_common.events.inbound import MediaPart, MessageReceived
from parley_common.events.media import MediaPending, RetryMediaFetch
from parley_common.mongo import read_stored
from parley_common.topics import DEAD_LETTERS, MEDIA_EVENTS, MEDIA_RETRIES
from parley_media.adapters.providers import FetchError, ProviderFetcher
from parley_media.domain import limits
from parley_media.domain.model import MediaState, inbound_media_id
from parley_media.domain.retry import Backoff
from parley_media.handlers.pipeline import MediaPipeline, Origin

log = structlog.get_logger(__name__)
SERVICE = "media"
# Never hold one retry record longer than this: well under the consumer's max poll interval (300 s), so a long
# backoff cannot get the consumer thrown out of its group. A job not yet due after it goes back on the topic.
MAX_RETRY_WAIT = 120.0


class Fetcher:
    def __init__(self, pipeline: MediaPipeline, providers: ProviderFetcher, channels: Channels, backoff: Backoff,
                 id_key: bytes):
        self.pipeline = pipeline
        self.id_key = id_key
        self.providers = providers
        self.channels = channels
        self.backoff = backoff

    async def on_message(self, event: MessageReceived) -> None:
        media = [part for part in event.parts if isinstance(part, MediaPart)]
        if media:
            await asyncio.gather(*(self._first_attempt(event, part) for part in media))

    async def _first_attempt(self, event: MessageReceived, part: MediaPart) -> None:
        job = RetryMediaFetch(
            occurred_at=event.occurred_at, tenant_id=event.tenant_id, correlation_id=event.correlation_id,
            channel_id=event.channel_id, external_user_id=event.external_user_id,
            media_id=inbound_media_id(self.id_key, event.tenant_id, event.channel_id, part.attachment_id),
            channel_type=event.channel_type, provider_message_id=event.provider_message_id, part=part,
            attempt=1, not_before=event.received_at, received_at=event.received_at,
        )
        if part.source == "email_attachment":
            await self.pipeline.open(origin_of(job))  # the bytes come on parley.inbound.attachments.v1
            return
        await self.attempt(job, attempt=1)

    async def retry_failed(self, record: dict[str, Any], login: str) -> None:
        """A failed download asked for again (the record is pending again): `MediaPending`, then the fetch goes
        through the retries topic like any other attempt, with the backoff's attempts counted afresh."""
        now = self.pipeline.clock.now()
        scope = {"occurred_at": now, "tenant_id": record["tenant_id"], "channel_id": record["channel_id"],
                 "correlation_id": record.get("correlation_id") or record["_id"],
                 "external_user_id": record["external_user_id"]}
        await self.pipeline.publisher.publish(MediaPending(
            **scope, media_id=record["_id"], provider_message_id=record.get("provider_message_id"),
            attachment_id=record.get("attachment_id"), requested_by=login), MEDIA_EVENTS)
        await self.pipeline.publisher.publish(RetryMediaFetch(
            **scope, media_id=record["_id"], channel_type=record["channel_type"],
            provider_message_id=record["provider_message_id"], part=read_stored(MediaPart, record["part"]),
            attempt=1, not_before=now, received_at=record["received_at"]), MEDIA_RETRIES)

    async def on_retry(self, job: RetryMediaFetch) -> None:
        wait = (job.not_before - self.pipeline.clock.now()).total_seconds()
        if wait > MAX_RETRY_WAIT:
            await asyncio.sleep(MAX_RETRY_WAIT)
            await self.pipeline.publisher.publish(job, MEDIA_RETRIES)
            return
        if wait > 0:
            await asyncio.sleep(wait)
        await self.attempt(job, attempt=job.attempt + 1)

    async def attempt(self, job: RetryMediaFetch, attempt: int) -> None:
        origin = origin_of(job)
        record = await self.pipeline.open(origin)
        if record["state"] == MediaState.STORED.value:
            await self.pipeline.announce_stored(record)  # a redelivery: the first announcement may be lost
            return
        if record["state"] == MediaState.FAILED.value:  # the same
            await self.pipeline.announce_failed(record)
            return
        if record["state"] != MediaState.PENDING.value:
            return
        channel = self.channels.get(job.channel_id)
        if channel is None or channel.tenant_id != job.tenant_id:
            await self._give_up(job, record, "unknown_channel", f"no channel {job.channel_id} for the tenant", attempt)
            return
        ceiling = limits.max_size(channel.type.value, limits.Direction.INBOUND)
        try:
            download = await self.providers.fetch(channel, job.part, ceiling)
        except FetchError as error:
            await self._after_failure(job, record, error, attempt)
            return
        try:
            stored = await self.pipeline.accept(origin, download.file, download.size, job.part.mime_type
                                                or download.declared_mime)
        finally:
            download.close()
        if stored["state"] == MediaState.STORED.value:
            await self.pipeline.announce_stored(stored)
        elif stored["state"] == MediaState.FAILED.value:
            await self._dead_letter(job, stored.get("failure_reason") or "refused", None)

    async def _after_failure(self, job: RetryMediaFetch, record: dict[str, object], error: FetchError,
                             attempt: int) -> None:
        log.info("media_download_failed", media_id=job.media_id, reason=error.reason, attempt=attempt)
        if not error.retryable or self.backoff.exhausted(attempt):
            await self._give_up(job, record, error.reason, error.detail, attempt)
            return
        await self.pipeline.repo.record_attempt(job.media_id, attempt, error.reason)
        not_before = self.pipeline.clock.now() + timedelta(seconds=self.backoff.delay(attempt))
        retry = job.model_copy(update={"attempt": attempt, "not_before": not_before, "last_reason": error.reason,
                                       "last_detail": error.detail, "occurred_at": self.pipeline.clock.now()})
        await self.pipeline.publisher.publish(retry, MEDIA_RETRIES)

    async def _give_up(self, job: RetryMediaFetch, record: dict[str, object], reason: str, detail: str | None,
                       attempt: int) -> None:
        await self.pipeline.fail(dict(record), reason, detail, attempt)
        await self._dead_letter(job, reason, detail)

    async def _dead_letter(self, job: RetryMediaFetch, reason: str, detail: str | None) -> None:
        letter = DeadLetter(
            occurred_at=self.pipeline.clock.now(), tenant_id=job.tenant_id, correlation_id=job.correlation_id,
            service=SERVICE, source_topic=self.pipeline.publisher.topic_name(MEDIA_RETRIES), reason=reason,
            detail=detail, original_key_base64=base64.b64encode(job.partition_key()).decode(),
            original_value_base64=base64.b64encode(job.model_dump_json().encode()).decode(),
        )
        await self.pipeline.publisher.publish(letter, DEAD_LETTERS)


def origin_of(job: RetryMediaFetch) -> Origin:
    return Origin(
        media_id=job.media_id, tenant_id=job.tenant_id, channel_id=job.channel_id,
        channel_type=job.channel_type.value, direction=limits.Direction.INBOUND, received_at=job.received_at,
        correlation_id=job.correlation_id,
        external_user_id=job.external_user_id, provider_message_id=job.provider_message_id,
        attachment_id=job.part.attachment_id, file_name=job.part.file_name, declared_mime=job.part.mime_type,
        part=job.part.model_dump(mode="json"),
    )
