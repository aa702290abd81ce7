"""The console service by itself, over ASGI: its health endpoints, the page's headers, and the bounds of the API
pass-through (too large, unknown, unreachable) answered with machine-readable codes before any service is asked,
and the trace it hands on.
The pass-through's working path is driven end to end by the browser tests (test_console.py)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from e2e_provider import E2EProvider, free_port
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tracing_fixtures import spans  # noqa: F401 - registered by being imported

from parley_common.settings import InfraSettings
from parley_console.app import create_app
from parley_console.settings import ConsoleSettings

KEY = "console-test-key-of-at-least-32-bytes!"


@pytest.fixture
async def console(tmp_path: Path, provider: E2EProvider) -> AsyncIterator[httpx.AsyncClient]:
    """A console serving a stand-in build of the app, whose contacts service is an HTTP server that reads what it
    is sent (the fake provider) and whose other services are a closed port."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>Parley console</title>")
    (tmp_path / "assets" / "app.js").write_text("console.log('parley')")
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = ConsoleSettings(infra=InfraSettings(jwt_secret=KEY), web_dir=tmp_path,
                               router_url=nowhere, contacts_url=provider.base_url,
                               outbound_url=nowhere,
                               media_url=nowhere, max_body_bytes=2048, max_upload_bytes=4096)
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://console") as client:
        yield client


async def test_health_readiness_and_metrics_answer(console: httpx.AsyncClient) -> None:
    assert (await console.get("/healthz")).json() == {"status": "ok"}
    ready = await console.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"web_app": "ok"}
    metrics = await console.get("/metrics")
    assert metrics.status_code == 200
    assert "parley_console_proxied_requests_total" in metrics.text


async def test_every_page_path_is_the_app_with_headers_that_keep_it_to_its_origin(console: httpx.AsyncClient) -> None:
    for path in ("/", "/conversations/abc"):
        page = await console.get(path)
        assert page.status_code == 200
        assert "Parley console" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
    asset = await console.get("/assets/app.js")
    assert asset.status_code == 200 and "parley" in asset.text


async def test_a_body_over_the_bound_is_refused_whatever_its_length_claims(console: httpx.AsyncClient) -> None:
    declared = await console.post("/v1/conversations/c1/notes", content=b"x" * 3000,
                                  headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "body_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(5):
            yield b"x" * 1000

    streamed = await console.post("/v1/contacts/c1/comments", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "body_too_large"
    upload = await console.post("/v1/media?channel_id=wa", content=b"x" * 3000)  # uploads have their own bound
    assert upload.status_code == 502  # within it: passed on (to a service that is not there)


async def test_an_unknown_api_is_404_and_an_unreachable_service_502(console: httpx.AsyncClient) -> None:
    unknown = await console.get("/v1/payments")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    down = await console.get("/v1/conversations", headers={"Authorization": "Bearer t"})
    assert down.status_code == 502
    assert down.json()["error"] == {"code": "upstream_unavailable",
                                    "message": "the router service cannot be reached"}


def test_the_console_refuses_to_start_without_the_jwt_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_JWT_SECRET", raising=False)
    from parley_common.settings import load_settings

    with pytest.raises(SystemExit):
        load_settings(ConsoleSettings, "parley-console")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


async def test_the_pass_through_continues_the_callers_trace(tmp_path: Path,
                                                            spans: InMemorySpanExporter) -> None:  # noqa: F811
    """The service behind the console gets the console's server span as its parent (`traceparent`)."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = ConsoleSettings(infra=InfraSettings(jwt_secret=KEY), web_dir=tmp_path, router_url=nowhere,
                               contacts_url=f"http://127.0.0.1:{upstream.server_address[1]}", outbound_url=nowhere,
                               media_url=nowhere)
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings)),
                                     base_url="http://console") as client:
            answered = await client.get("/v1/contacts/search?phone=1", headers={"traceparent": caller})
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert answered.status_code == 200
    (server,) = spans.get_finished_spans()
    (forwarded,) = _Recorder.seen
    assert forwarded["traceparent"].startswith(f"00-4bf92f3577b34da6a3ce929d0e0e4736-{server.context.span_id:016x}-")
