"""Wiring of the outbound service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service
from parley_outbound.settings import OutboundSettings

SERVICE = "outbound"


def create_app(settings: OutboundSettings) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=True)
    return build_service(
        service=SERVICE,
        title="Parley outbound",
        description="sending within channel rules: windows, templates, adapters",
        infra=settings.infra,
        routers=[],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        on_shutdown=[runtime.close],
    )


def main() -> None:
    run_service("parley-outbound", OutboundSettings, create_app)
