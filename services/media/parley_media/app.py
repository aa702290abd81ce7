"""Wiring of the media service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

import contextlib

import httpx
from fastapi import FastAPI

from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.tasks import running
from parley_common.topics import (
    DEAD_LETTERS,
    INBOUND_ATTACHMENTS,
    INBOUND_MESSAGES,
    MEDIA_EVENTS,
    MEDIA_RETRIES,
    Topic,
)
from parley_common.visibility_store import VisibilityProjection, visibility_reads
from parley_media.adapters.blobstore import BlobStore
from parley_media.adapters.gridfs_store import GridFSBlobStore
from parley_media.adapters.media_repository import MediaRepository
from parley_media.adapters.providers import ProviderFetcher
from parley_media.adapters.s3_store import S3BlobStore
from parley_media.domain.retry import Backoff
from parley_media.handlers.attachments import EmailAttachments
from parley_media.handlers.fetching import Fetcher
from parley_media.handlers.http_media import Links, media_router
from parley_media.handlers.http_retry import retry_router
from parley_media.handlers.http_upload import upload_router
from parley_media.handlers.pipeline import MediaPipeline
from parley_media.handlers.sweeper import Sweeper
from parley_media.settings import MediaSettings

SERVICE = "media"
# The retries' lane, idle while the events lane is busy, is asked twice a second instead of ~25 (with both idle, the
# process's one idle fetch asks for both every 40 ms: kafka_seams.IdleWatch): a retry is due seconds after its failure
# (PARLEY_MEDIA_RETRY_BASE_SECONDS), so half a second more before it is read changes nothing a customer sees.
RETRIES_IDLE_PAUSE_MS = 500
GROUP = "parley-media"


def blob_store(settings: MediaSettings, runtime: Runtime) -> BlobStore:
    if settings.storage == "s3":
        return S3BlobStore(settings.s3_endpoint_url, settings.s3_bucket, settings.s3_access_key,
                           settings.s3_secret_key.get_secret_value(), settings.s3_region, settings.s3_create_bucket)
    return GridFSBlobStore(runtime.db)


def consumer_groups(settings: MediaSettings, fetcher: Fetcher, attachments: EmailAttachments,
                    visibility: VisibilityProjection) -> list[ConsumerGroup]:
    """Two groups: downloads, e-mail attachments and who may see a customer; and the retries apart — each sleeps
    until its time, and nothing may wait behind that. Until issue 17 each topic had a group of its own
    (`parley-media.<topic without "parley.">`): their offsets are adopted once (parley_common.group_offsets)."""

    def formerly(topic: Topic) -> tuple[str]:
        return (f"{GROUP}.{topic.base_name.removeprefix('parley.')}",)

    events = ConsumerGroup(f"{GROUP}.events", (
        Reads(INBOUND_MESSAGES, fetcher.on_message, by_key=True, concurrency=settings.download_concurrency,
              formerly=formerly(INBOUND_MESSAGES)),
        Reads(INBOUND_ATTACHMENTS, attachments.on_attachment, formerly=formerly(INBOUND_ATTACHMENTS)),
        *visibility_reads(visibility, GROUP),
    ), max_records=settings.download_concurrency, linger_ms=settings.batch_linger_ms)
    retries = ConsumerGroup(f"{GROUP}.retries", (
        Reads(MEDIA_RETRIES, fetcher.on_retry, formerly=formerly(MEDIA_RETRIES)),
    ), max_records=1, idle_pause_ms=RETRIES_IDLE_PAUSE_MS,
        why="A retry sleeps until its time: one record per batch, in a group of its own, so the wait holds up "
            "nothing else.")
    return [events, retries]


def create_app(settings: MediaSettings, clock: Clock | None = None, channels: Channels | None = None,
               blobs: BlobStore | None = None) -> FastAPI:
    clock = clock or SystemClock()
    channels = channels if channels is not None else load_channels_or_exit(settings.infra.channels_file, "parley-media")
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=False)
    declare_published(runtime.broker, settings.infra.namespace, MEDIA_EVENTS, MEDIA_RETRIES, DEAD_LETTERS)
    blobs = blobs or blob_store(settings, runtime)
    repo = MediaRepository(runtime.db)
    pipeline = MediaPipeline(repo, blobs, runtime.publisher, clock, settings.retention_days)
    http = httpx.AsyncClient(timeout=settings.download_timeout_seconds, follow_redirects=True,
                             limits=httpx.Limits(max_connections=100, max_keepalive_connections=50))
    backoff = Backoff(settings.retry_base_seconds, settings.retry_max_seconds, settings.retry_max_attempts)
    id_key = settings.id_secret.get_secret_value().encode()
    fetcher = Fetcher(pipeline, ProviderFetcher(http), channels, backoff, id_key)
    attachments = EmailAttachments(pipeline, channels, id_key)
    sweeper = Sweeper(pipeline, settings.sweep_lease_seconds, settings.pending_timeout_seconds)
    links = Links(settings.signing_keys(), settings.link_ttl_seconds,
                  settings.public_base_url, clock)

    visibility = VisibilityProjection(runtime.db)
    for group in consumer_groups(settings, fetcher, attachments, visibility):
        consume_group(runtime.broker, group, namespace=settings.infra.namespace, publisher=runtime.publisher,
                      service=SERVICE, channels=channels)

    background = contextlib.AsyncExitStack()

    async def start() -> None:
        await blobs.start()
        await repo.ensure_indexes()
        if settings.sweeper_enabled:
            await background.enter_async_context(running(sweeper.run_forever(settings.sweep_interval_seconds)))

    async def stop() -> None:
        await background.aclose()
        await http.aclose()
        await blobs.close()
        await runtime.close()

    app = build_service(
        service=SERVICE,
        title="Parley media",
        description="attachments: fetch, store, serve signed, expire",
        infra=settings.infra,
        routers=[upload_router(pipeline, channels), media_router(repo, blobs, links, visibility),
                 retry_router(repo, fetcher)],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        replica_leases=runtime.replica_leases,
        on_startup=[start],
        on_shutdown=[stop],
        own_body_limits=("/v1/media",),  # uploads: the channel's ceiling, checked while streaming
    )
    app.state.sweeper = sweeper
    app.state.pipeline = pipeline
    return app


def main() -> None:
    run_service("parley-media", MediaSettings, create_app)
