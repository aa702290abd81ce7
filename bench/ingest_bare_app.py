"""The ceiling for bench/ingest_webhooks.py: the same FastAPI route shape that reads the body and answers 200."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/{channel_type}/{channel_id}")
async def receive(channel_type: str, channel_id: str, request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "accepted"})


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _with_correlation_middleware() -> FastAPI:
    """The bare route behind the same BaseHTTPMiddleware that parley_common.service installs (correlation id),
    to show what that middleware costs on its own."""
    from collections.abc import Awaitable, Callable

    from fastapi import Response

    wrapped = FastAPI()
    wrapped.router.routes.extend(app.router.routes)

    @wrapped.middleware("http")
    async def correlation(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.correlation_id = request.headers.get("X-Correlation-Id") or "generated"
        response = await call_next(request)
        response.headers["X-Correlation-Id"] = request.state.correlation_id
        return response

    return wrapped


app_with_middleware = _with_correlation_middleware()
