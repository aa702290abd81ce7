"""Settings of the outbound service (environment prefix PARLEY_OUTBOUND_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class OutboundSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_OUTBOUND_", extra="ignore")

    port: int = 8004
    media_base_url: str = Field(default="http://127.0.0.1:8005",
                                description="public base URL the providers fetch attachments from")
    rate_per_second: dict[str, float] = Field(
        default={"whatsapp": 80.0, "messenger": 40.0, "instagram": 40.0, "telegram": 30.0, "viber": 50.0,
                 "email": 20.0},
        description="default send rate per sender (channel) by channel type; WhatsApp 80 msg/s per number")
    channel_rate_per_second: dict[str, float] = Field(default={}, description="per channel id overrides")
    templates_mandatory_channels: list[str] = Field(
        default=[], description="channel ids that send approved templates only (edna: mandatory templates)")
    max_attempts: int = Field(default=4, ge=1, le=10, description="provider calls per message, incl. retries")
    backoff_base_seconds: float = Field(default=0.2, gt=0)
    backoff_cap_seconds: float = Field(default=10.0, gt=0)
    provider_timeout_seconds: float = Field(default=10.0, gt=0)
    stuck_after_seconds: float = Field(default=60.0, gt=0,
                                       description="a queued/sending message this old is reconciled at start")
    batch_records: int = Field(default=500, ge=1, le=5000,
                               description="send commands fetched at once; different conversations go concurrently")
    send_concurrency: int = Field(default=64, ge=1, le=90, description="conversations sent concurrently (each "
                                  "holds a connection of the Redis pool of 100)")
