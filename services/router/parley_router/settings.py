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
    inbound_batch_max: int = Field(default=256, ge=1, description="records taken per consumer batch (all topics)")
    inbound_concurrency: int = Field(default=64, ge=1,
                                     description="conversations whose inbound messages are handled at the same time")
    consumers: int = Field(default=1, ge=1, description="consumers of the router's inbound group in this process; each "
                           "takes its next batch when its last is done, so more overlap one batch's slow tail, but "
                           "each is a fetch loop of its own while records flow (idle, a process's consumers share "
                           "one fetch)")
    capacity_reconcile_interval_seconds: float = Field(
        default=30.0, gt=0, description="how often capacity slot sets in Redis are reconciled with MongoDB")
    capacity_full_audit_interval_seconds: float = Field(
        default=600.0, gt=0, description="how often a reconcile round reads every conversation held by an agent; the "
                                         "rounds between read only the conversations stored since the round before")
    capacity_reconcile_grace_seconds: float = Field(
        default=10.0, ge=1, description="a slot taken this recently is never removed (its save may be in flight)")
    offline_check_interval_seconds: float = Field(
        default=5.0, gt=0, description="how often agents whose heartbeat expired are handled as gone offline")
    tab_counts_repair_interval_seconds: float = Field(
        default=600.0, gt=0, description="how often the inbox tab counters are checked against a recount of the "
                                         "conversations (each check reads every conversation of each tenant)")
    supervisor_metrics_interval_seconds: float = Field(
        default=15.0, gt=0, description="how often the supervisors' floor of tenants with agents online is exported "
                                        "as Prometheus gauges")
    directory_cache_ttl_seconds: float = Field(
        default=2.0, gt=0, description="past this, a cached directory entry (agents, teams, routing) is checked "
                                       "against the tenant's directory version: how long another replica's edit "
                                       "may take to be seen here")
    brands: dict[str, str] = Field(
        default_factory=dict,
        description="channel id -> the tenant's company/brand it speaks for (inbox `brand` filter); JSON in "
                    "PARLEY_ROUTER_BRANDS. The channel file has no brand, so it is configured here.")
