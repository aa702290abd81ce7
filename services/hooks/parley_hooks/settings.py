"""Settings of the hooks service (environment prefix PARLEY_HOOKS_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class HooksSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_HOOKS_", extra="ignore")

    port: int = 8007
    consumer_group: str = "parley-hooks"
    allow_private_targets: bool = Field(
        default=False, description="deliver to loopback, private and link-local addresses: for local use only, "
                                   "never where those addresses reach internal services")
    allow_plain_http: bool = Field(default=False, description="accept http:// URLs (local use only)")
    max_subscriptions_per_tenant: int = Field(default=50, ge=1, le=1000)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=60,
                                           description="a receiver answering later counts as a failure (timeout)")
    retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=600.0, gt=0, le=86400)
    pause_after_failures: int = Field(default=12, ge=1, le=1000,
                                      description="a delivery failing this many times in a row pauses its "
                                                  "subscription (about 1 h 20 min with the default back-off)")
    concurrent_deliveries: int = Field(default=64, ge=1, le=1000,
                                       description="deliveries in flight at once (different keys only)")
    poll_seconds: float = Field(default=1.0, gt=0, le=60,
                                description="how often the dispatcher looks for retries that came due")
    delivered_log_days: int = Field(default=7, ge=1, le=90,
                                    description="how long delivered deliveries stay in the log (and can be replayed)")
    secret_overlap_hours: float = Field(default=24, ge=0, le=720,
                                        description="after a secret changes, deliveries carry a signature with "
                                                    "the previous one too for this long (receivers switch over)")
    batch_max: int = Field(default=200, ge=1, le=5000)
