"""Settings of the outbound service (environment prefix PARLEY_OUTBOUND_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class OutboundSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_OUTBOUND_", extra="ignore")

    port: int = 8004
