"""Settings of the media service (environment prefix PARLEY_MEDIA_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings


class MediaSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_MEDIA_", extra="ignore")

    port: int = 8005
