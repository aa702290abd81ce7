"""Settings of the media service (environment prefix PARLEY_MEDIA_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from parley_common.settings import Key, ServiceSettings


class MediaSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_MEDIA_", extra="ignore", env_nested_delimiter="__")

    port: int = 8005
    storage: Literal["gridfs", "s3"] = "gridfs"
    s3_endpoint_url: str | None = Field(default=None, description="None means AWS itself")
    s3_bucket: str = "parley-media"
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: SecretStr = SecretStr("")
    s3_create_bucket: bool = Field(default=False, description="create the bucket at start (local runs)")

    signing_secret: Key = Field(description="HMAC key that signs download links")
    signing_previous_secrets: list[Key] = Field(
        default_factory=list, max_length=4,
        description="earlier link keys still accepted while links they signed may be in flight (a JSON list; "
                    "docs/operations.md: rotating secrets)")
    id_secret: Key = Field(description="HMAC key deriving inbound media ids (keep it stable: a new key gives a "
                                       "redelivered attachment a new id)")
    link_ttl_seconds: int = Field(default=300, ge=5, le=3600)
    public_base_url: str = Field(default="", description="prefix of signed links, e.g. https://media.example.com")

    retention_days: float = Field(default=30, gt=0, description="media older than this becomes unavailable")
    sweep_interval_seconds: float = Field(default=60, gt=0)
    sweep_lease_seconds: float = Field(default=300, gt=0)
    pending_timeout_seconds: float = Field(default=24 * 3600, gt=0,
                                           description="a record pending this long is abandoned and cleaned up")
    sweeper_enabled: bool = True

    retry_base_seconds: float = Field(default=5, ge=0)
    retry_max_seconds: float = Field(default=600, ge=0)
    retry_max_attempts: int = Field(default=6, ge=1)
    download_timeout_seconds: float = Field(default=30, gt=0)
    download_concurrency: int = Field(default=64, ge=1, le=1000, description="inbound records handled at once")
    batch_linger_ms: int = Field(
        default=100, ge=0, le=1000, description="how long a batch of the events lane that is not full waits for more "
        "records: at a low rate a new conversation's events share one write of the visibility projection (a "
        "download starts, and the projection learns who holds a customer, that much later)")

    def signing_keys(self) -> tuple[bytes, ...]:
        """The key that signs links first, then the earlier ones still accepted."""
        return tuple(key.get_secret_value().encode() for key in (self.signing_secret, *self.signing_previous_secrets))
