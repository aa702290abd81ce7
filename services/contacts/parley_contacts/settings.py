"""Settings of the contacts service (environment prefix PARLEY_CONTACTS_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class ContactsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_CONTACTS_", extra="ignore")

    port: int = 8002
    consumer_group: str = "parley-contacts"
    consumer_workers: int = Field(default=6, ge=1, le=64,
                                  description="partitions handled concurrently; their records share bulk writes")
    batch_max: int = Field(default=200, ge=1, le=5000)
    batch_wait_ms: float = Field(default=5.0, ge=0, le=1000)
