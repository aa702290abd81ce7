"""Settings of the router service (environment prefix PARLEY_ROUTER_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_ROUTER_", extra="ignore")

    port: int = 8003
