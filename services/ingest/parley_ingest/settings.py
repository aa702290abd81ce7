"""Settings of the ingest service (environment prefix PARLEY_INGEST_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_INGEST_", extra="ignore")

    port: int = 8001
