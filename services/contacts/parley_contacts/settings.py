"""Settings of the contacts service (environment prefix PARLEY_CONTACTS_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class ContactsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTACTS_", extra="ignore")

    port: int = 8002
    consumer_group: str = "parley-contacts"
    consumer_concurrency: int = Field(default=64, ge=1, le=1000,
                                      description="customers handled at once from one Kafka batch; their records "
                                                  "share bulk writes")
    batch_max: int = Field(default=200, ge=1, le=5000)
    batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
    profile_lookups_per_second: float = Field(
        default=5.0, gt=0, le=100, description="Graph API profile look-ups (Messenger, Instagram) per channel and "
                                              "replica; the rest wait their turn on the background consumer")
    profile_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
