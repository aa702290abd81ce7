"""Settings of the console (environment prefix PARLEY_CONSOLE_; shared infrastructure under PARLEY_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field
from pydantic_settings import SettingsConfigDict

from parley_common.settings import ServiceSettings

BUILT_APP = Path(__file__).resolve().parent / "web_dist"


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_CONSOLE_", extra="ignore", env_nested_delimiter="__")

    port: int = 8006
    contacts_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8002")
    router_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8003")
    outbound_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8004")
    media_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8005")
    web_dir: Path = Field(default=BUILT_APP, description="the built web app (index.html and assets/)")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024,
                                description="largest request body of an API call other than an upload")
    max_upload_bytes: int = Field(default=101 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024,
                                  description="largest upload (POST /v1/media); media checks per channel")
    upstream_timeout_seconds: float = Field(default=30, gt=0, le=300)
