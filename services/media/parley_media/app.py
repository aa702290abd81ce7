"""Wiring of the media service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service
from parley_media.settings import MediaSettings

SERVICE = "media"


def create_app(settings: MediaSettings) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=False)
    return build_service(
        service=SERVICE,
        title="Parley media",
        description="attachments: fetch, store, serve signed, expire",
        infra=settings.infra,
        routers=[],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        on_shutdown=[runtime.close],
    )


def main() -> None:
    run_service("parley-media", MediaSettings, create_app)
