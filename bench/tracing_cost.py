"""The CPU that tracing adds per Kafka hop and per HTTP request (issue 21, measured as issue 17 measures: CPU of
the whole process, export thread included), in one process, with tracing off (the default), on and exporting
every span over OTLP/HTTP to a local sink (a separate process, whose CPU is not counted), and on with a 10 %
sampler.

One hop: the publisher's side (`tracing.sending` around nothing, the record's headers as `headers_for` builds them)
and the consumer's (`tracing.processing` with the decoded headers) — no broker, so only tracing's own cost shows.
One request: GET /openapi.json through a service's ASGI app (build_service) in process (httpx's ASGI transport),
so the server span's cost shows beside a small real request. The startup heap is frozen first, as in a service.

    .venv/bin/python bench/tracing_cost.py                # 20,000 hops and 2,000 requests per mode"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from parley_common import tracing
from parley_common.cloudevents import headers_for
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.service import build_service, freeze_heap
from parley_common.settings import InfraSettings

TOPIC = "bench.parley.inbound.messages.v1"


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Sink).serve_forever()


class _Record:
    partition, offset = 0, 1


def hops(count: int, provider: TracerProvider | None) -> float:
    """CPU seconds per hop, the export of its spans included."""
    now = datetime.now(UTC)
    event = MessageReceived(occurred_at=now, tenant_id="acme", correlation_id="c", channel_id="wa",
                            channel_type="whatsapp", external_user_id="1555", customer=Customer(wa_id="1555"),
                            provider_message_id="w", provider_timestamp=now, received_at=now,
                            parts=(TextPart(text="hi"),))
    record = _Record()
    started = time.process_time()
    for _ in range(count):
        headers = headers_for(event)
        with tracing.sending(TOPIC, headers):
            pass
        with tracing.processing(TOPIC, dict(headers), record):
            pass
    if provider is not None:
        provider.force_flush()
    return (time.process_time() - started) / count


async def requests(count: int, provider: TracerProvider | None) -> float:
    """CPU seconds per request, the export of its span included."""
    app = build_service(service="bench", title="Bench", infra=InfraSettings(jwt_secret="b" * 32),
                        routers=(), readiness={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
        await client.get("/openapi.json")  # builds the document once
        started = time.process_time()
        for _ in range(count):
            await client.get("/openapi.json")
        if provider is not None:
            provider.force_flush()
        return (time.process_time() - started) / count


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def measure(mode: str, provider: TracerProvider | None, hop_count: int, request_count: int) -> None:
    tracing.use(provider)
    hop = hops(hop_count, provider)
    request = asyncio.run(requests(request_count, provider))
    print(f"{mode:<32} {hop * 1e6:7.1f} µs CPU per hop  {request * 1e6:7.1f} µs CPU per request")
    tracing.use(None)
    if provider is not None:
        provider.shutdown()


def exporting(port: int, **variables: str) -> TracerProvider | None:
    os.environ.update({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", **variables})
    return tracing.tracer_provider("parley-bench", "0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--port", type=int, default=43_180)
    args = parser.parse_args()
    sink = multiprocessing.Process(target=_serve, args=(args.port,), daemon=True)
    sink.start()
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(args.hops * 2 + args.requests)  # measure every span, drop none
    freeze_heap()  # as a service's process does after its start (parley_common.service.serve)
    try:
        measure("off (the default)", None, args.hops, args.requests)
        dropping = TracerProvider()
        dropping.add_span_processor(BatchSpanProcessor(_Dropped()))
        measure("on, spans made, none exported", dropping, args.hops, args.requests)
        measure("on, every span exported", exporting(args.port), args.hops, args.requests)
        measure("on, 10 % sampled and exported", exporting(args.port, OTEL_TRACES_SAMPLER="traceidratio",
                                                           OTEL_TRACES_SAMPLER_ARG="0.1"), args.hops, args.requests)
    finally:
        sink.terminate()


if __name__ == "__main__":
    main()
