"""Tracing for the tests' assertions: the spans a test's code finished, in memory, through the same module state
a service's startup sets (parley_common.tracing.use), off again afterwards; and a fake OTLP/HTTP collector (a
real HTTP server decoding the protobuf exports) for spans that services send over the network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from parley_common import tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = tracing.new_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


@dataclass(frozen=True)
class ExportedSpan:
    service: str  # the resource's service.name
    instance: str  # service.instance.id
    name: str
    trace_id: str  # hex, as W3C headers and log lines write it
    span_id: str
    parent_span_id: str  # "" for a root
    links: tuple[tuple[str, str], ...]  # (trace id, span id) of each link


class FakeCollector(ThreadingHTTPServer):
    """Answers OTLP/HTTP trace exports (POST /v1/traces, protobuf) and keeps what arrived."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _CollectorHandler)
        self.exports: list[ExportTraceServiceRequest] = []
        self.arrived = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[ExportedSpan]:
        found = []
        for export in list(self.exports):
            for resource in export.resource_spans:
                attributes = {item.key: item.value.string_value for item in resource.resource.attributes}
                for scope in resource.scope_spans:
                    found += [ExportedSpan(attributes.get("service.name", ""),
                                           attributes.get("service.instance.id", ""), span.name,
                                           span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                                           tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links))
                              for span in scope.spans]
        return found


class _CollectorHandler(BaseHTTPRequestHandler):
    server: FakeCollector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf":
            self.server.exports.append(ExportTraceServiceRequest.FromString(body))
            self.server.arrived.set()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def serving(collector: FakeCollector) -> Iterator[FakeCollector]:
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.shutdown()
    collector.server_close()


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    yield from serving(FakeCollector())
