"""Wiring of the console: the web app and the API pass-through. No broker, no database: everything it shows
comes from the five services' public APIs, with the signed-in user's own token."""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI

from parley_common.runtime import run_service
from parley_common.service import build_service
from parley_console.handlers.proxy import Proxy, proxy_router
from parley_console.handlers.web import index_file, mount_web_app
from parley_console.settings import ConsoleSettings

SERVICE = "console"


def create_app(settings: ConsoleSettings) -> FastAPI:
    # httpx logs every request line at INFO: here those carry the inbox's search queries (phones, names).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    upstreams = {name: str(getattr(settings, f"{name}_url")).rstrip("/")
                 for name in ("contacts", "router", "outbound", "media")}
    client = httpx.AsyncClient(timeout=httpx.Timeout(settings.upstream_timeout_seconds, connect=5.0),
                               limits=httpx.Limits(max_connections=500, max_keepalive_connections=100))
    proxy = Proxy(upstreams, client, settings.max_body_bytes, settings.max_upload_bytes)

    async def app_built() -> object:
        if not index_file(settings.web_dir).is_file():
            raise FileNotFoundError(f"no {index_file(settings.web_dir)}")
        return True

    async def stop() -> None:
        await client.aclose()

    app = build_service(
        service=SERVICE,
        title="Parley console",
        description="the agent console: the web app, and its API calls passed through to the services",
        infra=settings.infra,
        routers=[proxy_router(proxy)],
        readiness={"web_app": app_built},
        on_shutdown=[stop],
        own_body_limits=("/v1/",),  # the proxy bounds bodies itself: uploads larger than JSON calls
    )
    mount_web_app(app, settings.web_dir)
    return app


def main() -> None:
    run_service("parley-console", ConsoleSettings, create_app)
