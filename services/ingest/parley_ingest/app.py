"""Wiring of the ingest service: settings, Kafka link, Redis de-dup, customer identities (MongoDB behind a Redis
cache), webhook routes, HTTP app."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI

from parley_common.channels import Channels, load_channels_or_exit
from parley_common.connections import kafka_security
from parley_common.health import redis_check
from parley_common.kafka import EventPublisher, make_broker
from parley_common.logging import configure_logging
from parley_common.runtime import Runtime, run_service
from parley_common.service import asyncapi_document, build_service, declare_published
from parley_common.settings import load_settings
from parley_common.topics import (
    CHANNEL_UPDATES,
    DEAD_LETTERS,
    INBOUND_ATTACHMENTS,
    INBOUND_MESSAGES,
    INBOUND_PREFERENCES,
    INBOUND_STATUSES,
)
from parley_ingest.adapters.cache import SharedCache
from parley_ingest.adapters.dedup import DedupStore
from parley_ingest.adapters.identities import IdentityStore
from parley_ingest.adapters.identity_records import IdentityRecords
from parley_ingest.adapters.kafka_link import KafkaLink
from parley_ingest.domain.providers import plugins_for
from parley_ingest.handlers.intake import Intake
from parley_ingest.handlers.webhooks import Limits, Normaliser, webhook_router
from parley_ingest.settings import IngestSettings

SERVICE = "ingest"
TITLE = "Parley ingest"
PRODUCED = (INBOUND_MESSAGES, INBOUND_STATUSES, INBOUND_ATTACHMENTS, INBOUND_PREFERENCES, CHANNEL_UPDATES,
            DEAD_LETTERS)
log = structlog.get_logger(__name__)


def create_app(settings: IngestSettings, channels: Channels | None = None) -> FastAPI:
    channels = channels or load_channels_or_exit(settings.infra.channels_file, "parley-ingest")
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=True)  # its broker stays unused
    # Email attachments travel as events up to the attachments topic's limit: the producer must allow them.
    broker = make_broker(settings.infra.kafka_bootstrap, client_id=f"parley-{SERVICE}",
                         idle_fetch_backoff_ms=settings.infra.kafka_idle_fetch_backoff_ms,
                         security=kafka_security(settings.infra),
                         max_request_size=INBOUND_ATTACHMENTS.max_message_bytes)
    declare_published(broker, settings.infra.namespace, *PRODUCED)
    link = KafkaLink(broker, EventPublisher(broker, settings.infra.namespace), settings.publish_timeout_seconds)
    prefix = settings.infra.redis_prefix()
    cache = SharedCache(runtime.redis)
    dedup = DedupStore(cache, settings.dedup_ttl_seconds, settings.dedup_check_timeout_seconds)
    database_timeout = settings.identity_database_timeout_seconds
    identities = IdentityStore(cache, IdentityRecords(runtime.db, timeout_seconds=database_timeout), prefix,
                               cache_ttl_seconds=settings.identity_cache_ttl_seconds,
                               database_timeout_seconds=database_timeout)
    intake = Intake(link, dedup, identities, prefix, linger_seconds=settings.linger_ms / 1000)
    normaliser = Normaliser(settings.parse_budget_seconds)

    async def stop_parsing() -> None:
        normaliser.close()

    async def connect_kafka() -> None:
        # Not fatal: while Kafka is away the service stays up and answers 503, so providers keep retrying.
        if not await link.connect():
            log.warning("ingest_started_without_kafka")

    app = build_service(
        service=SERVICE,
        title=TITLE,
        description="webhook receivers: verify, normalise, de-duplicate, publish",
        infra=settings.infra,
        routers=[webhook_router(channels, intake, Limits(settings.max_body_bytes, settings.max_email_bytes,
                                                      settings.max_in_flight),
                                plugins_for(channels), normaliser)],
        # not MongoDB: only identifiers the cache does not know need it, and a pod taken out of service would
        # refuse known customers too (those webhooks are answered 503 identity_store_unavailable meanwhile)
        readiness={"kafka": link.check, "redis": redis_check(runtime.redis)},
        on_startup=[connect_kafka],
        on_shutdown=[link.close, runtime.close, stop_parsing],
        own_body_limits=("/webhooks/",),  # 4 MiB JSON, 25 MiB email: checked while streaming (handlers/webhooks.py)
    )

    @app.get("/asyncapi.json", tags=["docs"], summary="AsyncAPI document of the topics ingest produces")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document(broker, TITLE)

    return app


def main() -> None:
    run_service("parley-ingest", IngestSettings, create_app)


def app_from_env() -> FastAPI:
    """Factory for ASGI servers started by their own CLI (`uvicorn --factory`, `granian --factory`)."""
    settings = load_settings(IngestSettings, "parley-ingest")
    configure_logging("parley-ingest", settings.infra.log_level, settings.infra.log_json)
    return create_app(settings)
