"""Settings of the router service (environment prefix PARLEY_ROUTER_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_ROUTER_", extra="ignore")

    port: int = 8003
    consumer_group: str = "parley-router"
    presence_ttl_seconds: int = Field(default=60, ge=2, description="no heartbeat for this long → offline")
    sweep_interval_seconds: float = Field(default=5.0, gt=0, description="how often expired offers / snoozes move")
    brands: dict[str, str] = Field(
        default_factory=dict,
        description="channel id -> the tenant's company/brand it speaks for (inbox `brand` filter); JSON in "
                    "PARLEY_ROUTER_BRANDS. The channel file has no brand, so it is configured here.")
