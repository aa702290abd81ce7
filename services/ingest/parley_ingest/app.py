"""Wiring of the ingest service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service
from parley_ingest.settings import IngestSettings

SERVICE = "ingest"


def create_app(settings: IngestSettings) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=False, use_redis=True)
    return build_service(
        service=SERVICE,
        title="Parley ingest",
        description="webhook receivers: verify, normalise, de-duplicate, publish",
        infra=settings.infra,
        routers=[],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        on_shutdown=[runtime.close],
    )


def main() -> None:
    run_service("parley-ingest", IngestSettings, create_app)
