"""Settings of the ingest service (environment prefix PARLEY_INGEST_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings

MIB = 1024 * 1024
DAY_SECONDS = 24 * 3600


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_INGEST_", extra="ignore")

    port: int = 8001
    max_body_bytes: int = Field(default=4 * MIB, ge=1024,
                                description="JSON webhooks; Meta batches up to 1,000 updates and 3 MB")
    max_email_bytes: int = Field(default=25 * MIB, ge=1024,
                                 description="raw RFC 822 messages; an attachment travels base64-encoded (+33 %) "
                                             "on parley.inbound.attachments.v1, whose limit is 36 MiB")
    parse_budget_seconds: float = Field(default=10.0, gt=0,
                                        description="an email (or a large body) still parsing after this is "
                                                    "answered 413 and dead-lettered")
    dedup_ttl_seconds: int = Field(default=8 * DAY_SECONDS, ge=7 * DAY_SECONDS,
                                   description="longer than WhatsApp's 7 days of retries")
    max_in_flight: int = Field(default=100, ge=1, description="webhooks handled at once by this process; one more "
                                                              "is answered 503 overloaded at once (the provider "
                                                              "retries) instead of queueing into time-outs")
    linger_ms: int = Field(
        default=25, ge=0, le=200,
        description="a webhook within this of the one before, while another is being handled, waits up to this for "
                    "others, and all go on together: their cache reads, identity writes, Kafka produce and cache "
                    "writes are one round trip each (parley_common.batching.LingerGate); a webhook after a quieter "
                    "spell, or with none other in flight, does not wait")
    dedup_check_timeout_seconds: float = Field(
        default=2.0, gt=0, description="the duplicate check answers within this or the webhook is answered 503 "
                                       "before publishing (never published unchecked)")
    publish_timeout_seconds: float = Field(default=10.0, gt=0,
                                           description="wait this long for Kafka's acks, then answer 503")
    identity_cache_ttl_seconds: int = Field(
        default=30 * DAY_SECONDS, ge=3600,
        description="how long Redis caches the key of a customer identifier (MongoDB keeps it for good); a customer "
                    "silent for longer costs one database read on their next message")
    identity_database_timeout_seconds: float = Field(
        default=2.0, gt=0, description="an identifier Redis does not know is looked up and recorded in MongoDB "
                                       "within this or the webhook is answered 503 identity_store_unavailable")
