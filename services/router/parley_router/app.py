"""Wiring of the router service: settings, broker, handlers, HTTP app."""

from __future__ import annotations

from fastapi import FastAPI

from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service
from parley_router.settings import RouterSettings

SERVICE = "router"


def create_app(settings: RouterSettings) -> FastAPI:
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=True)
    return build_service(
        service=SERVICE,
        title="Parley router",
        description="conversations, assignment, queues, agents, bots",
        infra=settings.infra,
        routers=[],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        on_shutdown=[runtime.close],
    )


def main() -> None:
    run_service("parley-router", RouterSettings, create_app)
