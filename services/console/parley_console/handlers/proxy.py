"""The app's API calls, passed through to the service that owns each /v1 resource, so the browser talks to
one origin and holds no service address. Bodies stream both ways (uploads, exports and the router's
server-sent events) and are bounded on the way in; the caller's bearer token goes through untouched (each
service checks it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Counter

from parley_common import tracing
from parley_common.bounds import BodyTooLarge, limited
from parley_common.errors import ApiError

# Which service owns each API resource (the same split as the API Ingress, deploy/k8s/services.py).
OWNERS: tuple[tuple[str, str], ...] = (
    ("/v1/conversations", "router"), ("/v1/agents", "router"), ("/v1/teams", "router"), ("/v1/routing", "router"),
    ("/v1/supervisor", "router"),
    ("/v1/contacts", "contacts"),
    ("/v1/messages", "outbound"), ("/v1/templates", "outbound"), ("/v1/windows", "outbound"),
    ("/v1/saved-replies", "outbound"), ("/v1/channels", "outbound"),
    ("/v1/media", "media"),
)
UPLOAD_PATH = "/v1/media"
STREAM_PATH = "/v1/conversations/stream"
REQUEST_HEADERS = ("authorization", "content-type", "content-length", "accept", "last-event-id", "range",
                   "x-correlation-id", "if-none-match")
RESPONSE_HEADERS = ("content-type", "content-length", "content-disposition", "content-range", "accept-ranges",
                    "cache-control", "etag", "retry-after", "x-correlation-id", "x-accel-buffering")
PROXIED = Counter("parley_console_proxied_requests_total", "API calls passed through, by service and status",
                  ["service", "status"])


def owner_of(path: str) -> str | None:
    for prefix, service in OWNERS:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


class Proxy:
    def __init__(self, upstreams: Mapping[str, str], client: httpx.AsyncClient, max_body: int,
                 max_upload: int) -> None:
        self.upstreams = dict(upstreams)
        self.client = client
        self.max_body = max_body
        self.max_upload = max_upload

    async def forward(self, request: Request) -> StreamingResponse:
        path = request.url.path
        service = owner_of(path)
        if service is None:
            raise ApiError(404, "not_found", f"no API at {path}")
        limit = self.max_upload if path == UPLOAD_PATH and request.method == "POST" else self.max_body
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise ApiError(413, "body_too_large", f"request bodies here are limited to {limit} bytes")
        headers = {name: value for name in REQUEST_HEADERS if (value := request.headers.get(name)) is not None}
        tracing.propagate_to(headers)
        upstream = self._build(request, service, path, headers, limit)
        try:
            response = await self.client.send(upstream, stream=True)
        except BodyTooLarge:
            raise ApiError(413, "body_too_large", f"request bodies here are limited to {limit} bytes") from None
        except httpx.TimeoutException:
            PROXIED.labels(service, "timeout").inc()
            raise ApiError(504, "upstream_timeout", f"the {service} service did not answer in time") from None
        except httpx.HTTPError:
            PROXIED.labels(service, "unavailable").inc()
            raise ApiError(502, "upstream_unavailable", f"the {service} service cannot be reached") from None
        PROXIED.labels(service, str(response.status_code)).inc()
        kept = {name: value for name in RESPONSE_HEADERS if (value := response.headers.get(name)) is not None}
        return StreamingResponse(relay(response), status_code=response.status_code, headers=kept)

    def _build(self, request: Request, service: str, path: str, headers: dict[str, str],
               limit: int) -> httpx.Request:
        query = request.url.query
        has_body = request.method in ("POST", "PUT", "PATCH")
        extensions = {}
        if path == STREAM_PATH:  # open for as long as the screen is: no read timeout on the live stream
            timeout = self.client.timeout
            extensions["timeout"] = httpx.Timeout(timeout.connect, read=None, write=timeout.write,
                                                  pool=timeout.pool).as_dict()
        url = f"{self.upstreams[service]}{path}" + (f"?{query}" if query else "")
        return self.client.build_request(request.method, url, headers=headers,
                                         content=bounded(request, limit) if has_body else None,
                                         extensions=extensions)


def bounded(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused past `limit` bytes whatever Content-Length claimed."""
    return Request(request.scope, limited(request.receive, limit)).stream()


async def relay(response: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it comes (server-sent events unbuffered); the upstream connection is released
    when the browser goes away too."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


def proxy_router(proxy: Proxy) -> APIRouter:
    router = APIRouter(tags=["api"])

    @router.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      summary="The services' APIs, passed through (see each service's OpenAPI document)")
    async def forward(request: Request) -> StreamingResponse:
        return await proxy.forward(request)

    return router
