"""The built web app: its hashed assets (cached for long) and index.html for every page path (the app routes
on the client). Headers keep the page to its own origin: no inline scripts, no framing, no referrer (the
sign-in link carries the token in the fragment, which browsers never send, but a referrer could leak a path)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from parley_common.errors import ApiError

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                               "style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'self'; object-src 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def index_file(web_dir: Path) -> Path:
    return web_dir / "index.html"


def mount_web_app(app: FastAPI, web_dir: Path) -> None:
    """After every other route: API paths, /healthz, /metrics and the documents win over the page paths."""
    index = index_file(web_dir)
    assets = web_dir / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="assets")

    async def page(rest: str = "") -> FileResponse:
        if not index.is_file():
            raise ApiError(503, "app_not_built", "the web app is not built: run make bootstrap")
        return FileResponse(index, headers=PAGE_HEADERS)

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/{rest:path}", page, methods=["GET"], include_in_schema=False)
