"""Tracing: the W3C trace context written into and read from record headers, the consumer's span a child of the
producer's (a batch's span linked to each), off unless an OTLP endpoint is set (then no exporter, no thread, no
headers), the standard variables honoured, trace ids on log lines, and a server span per HTTP request that
continues the caller's `traceparent`."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing_fixtures import spans  # noqa: F401 - registered by being imported

from parley_common import tracing
from parley_common.logging import configure_logging
from parley_common.service import build_service
from parley_common.settings import InfraSettings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=opaque"}
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@dataclass(frozen=True)
class Record:
    headers: tuple[tuple[str, bytes], ...]
    partition: int = 3
    offset: int = 42


def as_record(headers: dict[str, str]) -> Record:
    return Record(tuple((name, value.encode()) for name, value in headers.items()))


def test_the_consumers_span_is_the_child_of_the_producers(spans: InMemorySpanExporter) -> None:  # noqa: F811
    headers = {"ce_id": "e-1", "ce_type": "parley.message.received", "ce_tenantid": "acme", "ce_correlationid": "c-9"}
    with tracing.sending("ns.parley.inbound.messages.v1", headers):
        pass
    assert set(headers) == {"ce_id", "ce_type", "ce_tenantid", "ce_correlationid", "traceparent"}  # no tracestate
    with tracing.processing("ns.parley.inbound.messages.v1", headers, as_record(headers)):
        pass
    producer, consumer = spans.get_finished_spans()
    assert (producer.name, producer.kind) == ("send ns.parley.inbound.messages.v1", SpanKind.PRODUCER)
    assert (consumer.name, consumer.kind) == ("process ns.parley.inbound.messages.v1", SpanKind.CONSUMER)
    assert headers["traceparent"].startswith(f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-")
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.attributes is not None and producer.attributes is not None
    assert producer.attributes["messaging.message.id"] == "e-1"
    assert consumer.attributes["messaging.message.id"] == "e-1"
    assert consumer.attributes["messaging.destination.partition.id"] == "3"
    assert consumer.attributes["messaging.kafka.offset"] == 42
    for span in (producer, consumer):
        assert span.attributes is not None and span.attributes["parley.tenant_id"] == "acme"
        assert span.attributes["parley.correlation_id"] == "c-9"


def test_a_callers_trace_and_tracestate_travel_on(spans: InMemorySpanExporter) -> None:  # noqa: F811
    headers: dict[str, str] = {}
    with tracing.processing("in", CALLER, as_record(CALLER)), tracing.sending("out", headers):
        pass
    assert headers["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    assert headers["tracestate"] == "vendor=opaque"
    assert {span.context.trace_id for span in spans.get_finished_spans()} == {int(CALLER_TRACE, 16)}


def test_a_record_without_trace_context_starts_a_trace(spans: InMemorySpanExporter) -> None:  # noqa: F811
    with tracing.processing("in", {"traceparent": "garbage"}, as_record({})):
        pass
    (span,) = spans.get_finished_spans()
    assert span.parent is None and span.context.is_valid


def test_a_batch_span_links_every_records_producer(spans: InMemorySpanExporter) -> None:  # noqa: F811
    produced = []
    for number in range(3):
        headers = {"ce_id": f"e-{number}"}
        with tracing.sending("t", headers):
            pass
        produced.append(as_record(headers))
    with tracing.processing_batch("t", [*produced, as_record({})]):
        pass
    *producers, batch = spans.get_finished_spans()
    assert batch.parent is None and batch.kind == SpanKind.CONSUMER
    assert batch.attributes is not None and batch.attributes["messaging.batch.message_count"] == 4
    assert [link.context.span_id for link in batch.links] == [span.context.span_id for span in producers]


def test_a_dead_lettered_record_marks_its_span(spans: InMemorySpanExporter) -> None:  # noqa: F811
    with tracing.processing("t", {}, as_record({})):
        tracing.dead_lettered("unknown_channel")
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None and span.attributes["error.type"] == "unknown_channel"
    assert span.status.status_code == trace.StatusCode.ERROR


def test_off_writes_no_headers_and_starts_no_span() -> None:
    assert not tracing.enabled()
    headers: dict[str, str] = {}
    with tracing.sending("t", headers), tracing.processing("t", CALLER, as_record(CALLER)):
        assert not trace.get_current_span().get_span_context().is_valid
    with tracing.processing_batch("t", [as_record(CALLER)]):
        pass
    assert headers == {}
    assert tracing.http_telemetry() == {"tracing": False, "metrics": False, "logs": False}


def test_without_an_endpoint_no_exporter_and_no_thread_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    threads = set(threading.enumerate())
    assert tracing.tracer_provider("parley-ingest", "0.1.0") is None
    tracing.start_tracing("parley-ingest", "0.1.0")
    assert not tracing.enabled()
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"  # the API's no-op, nothing set
    assert set(threading.enumerate()) == threads
    for switched_off in ({"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert not tracing.exporter_configured(ENDPOINT | switched_off)


def test_an_endpoint_starts_the_exporter_with_the_standard_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = ENDPOINT | {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    provider = tracing.tracer_provider("parley-router", "0.1.0", "router-7f9c")
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "parley-router"
        assert provider.resource.attributes["service.version"] == "0.1.0"
        assert provider.resource.attributes["service.instance.id"] == "router-7f9c"
        assert "TraceIdRatioBased{0.25}" in provider.sampler.get_description()
        assert any("OtelBatchSpanRecordProcessor" in thread.name for thread in threading.enumerate())
    finally:
        provider.shutdown()


@pytest.mark.parametrize("refused", [{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, {"OTEL_TRACES_EXPORTER": "zipkin"}])
def test_an_exporter_this_build_lacks_is_refused(refused: dict[str, str]) -> None:
    with pytest.raises(tracing.TracingSettingsError, match="only OTLP over http/protobuf"):
        tracing.exporter_configured(ENDPOINT | refused)


@pytest.mark.usefixtures("restores_logging")
def test_log_lines_inside_a_span_carry_its_ids(spans: InMemorySpanExporter,  # noqa: F811
                                               capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("parley-test", "INFO", json=True)
    log = structlog.get_logger("test")
    with tracing.processing("t", CALLER, as_record(CALLER)):
        log.info("inside")
    log.info("outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    (span,) = spans.get_finished_spans()
    assert (inside["trace_id"], inside["span_id"]) == (CALLER_TRACE, f"{span.context.span_id:016x}")
    assert "trace_id" not in outside and "span_id" not in outside


async def test_a_request_gets_a_server_span_continuing_the_callers_trace(spans: InMemorySpanExporter,  # noqa: F811
                                                                        ) -> None:
    infra = InfraSettings(jwt_secret="t" * 32)  # type: ignore[arg-type]
    app = build_service(service="test", title="Test", infra=infra, routers=(), readiness={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        assert (await client.get("/openapi.json", headers=CALLER)).status_code == 200
        assert (await client.get("/healthz", headers=CALLER)).status_code == 200
        await client.get("/v1/windows/wa-main/447700912345?phone=%2B447700912345", headers=CALLER)
    server, unmatched = spans.get_finished_spans()  # probes are not traced
    assert (server.name, server.kind) == ("GET /openapi.json", SpanKind.SERVER)
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE
    assert unmatched.attributes is not None and unmatched.attributes["http.response.status_code"] == 404
    assert "447700912345" not in repr(dict(unmatched.attributes)) + unmatched.name  # paths and queries never kept
    assert unmatched.attributes["url.path"] == unmatched.attributes["url.query"] == "REDACTED"
