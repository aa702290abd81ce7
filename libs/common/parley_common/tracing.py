"""OpenTelemetry tracing, off unless an OTLP endpoint is configured.

On: every service process holds one SDK TracerProvider (its name, version and instance as the resource) that
exports over OTLP/HTTP in a background thread; FastAPI's own telemetry opens a server span per request and
honours the caller's `traceparent`; every produced record carries the W3C trace context in its headers
(`traceparent`, `tracestate`) next to the CloudEvents ones, under a producer span; every consumed record is
handled in a consumer span whose parent is the producer's (a batch handled as a whole: one span linked to each
record's context, the OpenTelemetry messaging convention). So a webhook and everything it causes is one trace.

Off (no endpoint, the default): no provider, no thread, no span objects; the hot path pays one check of a module
global per record (see docs/benchmarks.md). Configured by the standard variables only (OTEL_EXPORTER_OTLP_*,
OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES…): collectors, the OpenTelemetry Operator and every vendor's
guide speak them, and a PARLEY_ twin would be a second name for the same thing."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# The record headers this module writes, as the AsyncAPI documents describe them (parley_common.service).
HEADERS: dict[str, str] = {
    TRACEPARENT: "W3C Trace Context: the trace and the producer's span (version-traceid-spanid-flags); present "
                 "when the producer traces (OTEL_EXPORTER_OTLP_ENDPOINT set). A consumer's span is its child.",
    TRACESTATE: "W3C Trace Context: vendor-specific trace state, present when the trace carries one.",
}
# Only the trace context crosses Kafka: W3C baggage from an HTTP caller is not copied into records.
_PROPAGATOR = TraceContextTextMapPropagator()
# Probes and scrapes would be most of the spans and tell nothing.
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_REQUEST_TARGET = ("url.path", "url.query", "url.full")
_NOTHING: AbstractContextManager[None] = nullcontext()
# Span attributes from a record's CloudEvents headers: the event, and the tenant and correlation id to find a
# tenant's traces and join them with logs written outside a span (both bounded: 1-128 characters).
_EVENT_ATTRIBUTES = (("ce_id", "messaging.message.id"), ("ce_type", "cloudevents.event_type"),
                     ("ce_tenantid", "parley.tenant_id"), ("ce_correlationid", "parley.correlation_id"))


class TracingSettingsError(ValueError):
    """A tracing variable this build cannot honour: the service refuses to start rather than drop the traces."""


class _Tracing:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None


_current = _Tracing()


def exporter_configured(environ: Mapping[str, str]) -> bool:
    """Whether the standard variables ask for OTLP trace export (OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none
    turn it off as the specification says). Only OTLP over HTTP/protobuf is installed: another protocol or
    exporter is refused."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if not endpoint or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or exporter == "none":
        return False
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip()
    if exporter != "otlp" or protocol != "http/protobuf":
        raise TracingSettingsError(f"only OTLP over http/protobuf is supported (OTEL_TRACES_EXPORTER={exporter}, "
                                   f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol})")
    return True


def tracer_provider(service: str, version: str, instance_id: str = "") -> TracerProvider | None:
    """The exporting provider the environment asks for, or None (nothing built, no thread started). The SDK
    reads the sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on), OTEL_RESOURCE_ATTRIBUTES, and the
    exporter's endpoint, headers, timeout, compression and certificates from the environment itself."""
    if not exporter_configured(os.environ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # only when exporting

    attributes: dict[str, str] = {SERVICE_NAME: service, SERVICE_VERSION: version}
    if instance_id:
        attributes[SERVICE_INSTANCE_ID] = instance_id
    provider = new_provider(Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def new_provider(resource: Resource | None = None) -> TracerProvider:
    """A provider whose spans never hold a request's path or query string (they carry phone numbers, user ids and
    search terms: /v1/windows/{channel_id}/{external_user_id}, ?phone=…); the route template (`http.route`, the
    span's name) says which API was called."""
    provider = TracerProvider(resource=resource) if resource is not None else TracerProvider()
    provider.add_span_processor(_RequestTargetRedacted())
    return provider


class _RequestTargetRedacted(SpanProcessor):
    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        attributes = span.attributes or {}
        for name in _REQUEST_TARGET:
            if name in attributes:
                span.set_attribute(name, "REDACTED")


def start_tracing(service: str, version: str, instance_id: str = "") -> None:
    """A service process's startup: export if the environment says so, as the global provider too (so any
    library that traces with the global API joins the same traces). Spans still queued are sent at exit."""
    provider = tracer_provider(service, version, instance_id)
    if provider is not None:
        trace.set_tracer_provider(provider)
        use(provider)


def use(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop). `start_tracing` calls it; tests give an in-memory one."""
    _current.provider = provider
    _current.tracer = provider.get_tracer("parley") if provider is not None else None


def enabled() -> bool:
    return _current.tracer is not None


def http_telemetry() -> TelemetryConfig:
    """FastAPI's built-in telemetry (FastAPI ≥ 0.165): a server span per request, a child of the caller's
    `traceparent`, named by route template; not for probes and scrapes. Its per-step spans, metrics and log
    records stay off (Prometheus and structlog already cover those). Off entirely without a provider."""
    if _current.provider is None:
        return {"tracing": False, "metrics": False, "logs": False}
    return {"tracer_provider": _current.provider, "tracing": True, "metrics": False, "logs": False,
            "operation_spans": False, "exclude": lambda scope: scope.get("path") in _UNTRACED_PATHS}


def sending(topic_name: str, headers: MutableMapping[str, str]) -> AbstractContextManager[Any]:
    """A producer span around handing one record to the producer, its context written into the record's
    `headers` (the CloudEvents ones: the event's id and type label the span)."""
    tracer = _current.tracer
    if tracer is None:
        return _NOTHING
    return _sending(tracer, topic_name, headers)


@contextmanager
def _sending(tracer: Tracer, topic_name: str, headers: MutableMapping[str, str]) -> Iterator[None]:
    attributes = _messaging(topic_name, "send")
    for header, attribute in _EVENT_ATTRIBUTES:
        if header in headers:
            attributes[attribute] = headers[header]
    with tracer.start_as_current_span(f"send {topic_name}", kind=SpanKind.PRODUCER, attributes=attributes):
        _PROPAGATOR.inject(headers)
        yield


def propagate_to(headers: MutableMapping[str, str]) -> None:
    """Write the current trace context into the headers of a request to another Parley service (the console's
    pass-through), so the service's server span continues the trace."""
    if _current.tracer is not None:
        _PROPAGATOR.inject(headers)


def processing(topic_name: str, headers: Mapping[str, str], record: Any) -> AbstractContextManager[Any]:
    """A consumer span for handling one record (`headers` decoded), the child of the span that produced it (the
    headers' trace context; a new trace when the record carries none)."""
    tracer = _current.tracer
    if tracer is None:
        return _NOTHING
    attributes = _messaging(topic_name, "process")
    partition, offset = getattr(record, "partition", None), getattr(record, "offset", None)
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    for header, attribute in _EVENT_ATTRIBUTES:
        if header in headers:
            attributes[attribute] = headers[header]
    return tracer.start_as_current_span(f"process {topic_name}", context=_PROPAGATOR.extract(headers),
                                        kind=SpanKind.CONSUMER, attributes=attributes)


def processing_batch(topic_name: str, records: Iterable[Any]) -> AbstractContextManager[Any]:
    """A consumer span for handling a batch of records as a whole: a new trace, linked to the span that produced
    each record (the messaging convention for batches: a span has one parent, a batch has many producers)."""
    tracer = _current.tracer
    if tracer is None:
        return _NOTHING
    links = []
    count = 0
    for record in records:
        count += 1
        context = trace.get_current_span(_PROPAGATOR.extract(record_trace_headers(record.headers))).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    attributes = {**_messaging(topic_name, "process"), "messaging.batch.message_count": count}
    return tracer.start_as_current_span(f"process {topic_name}", context=Context(), kind=SpanKind.CONSUMER,
                                        attributes=attributes, links=links)


def record_trace_headers(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """The trace context headers of a Kafka record (its headers are (name, bytes) pairs)."""
    return {name: value.decode(errors="replace") for name, value in headers or ()
            if name in HEADERS and isinstance(value, bytes)}


def dead_lettered(reason: str) -> None:
    """Mark the current consumer span: its record went to the dead-letter topic (`reason`), and is never retried."""
    span: Span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({"parley.outcome": "dead_lettered", "error.type": reason})
        span.set_status(trace.StatusCode.ERROR, reason)


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` on every line logged inside a span, so logs and traces join."""
    if _current.tracer is not None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict["trace_id"] = format(context.trace_id, "032x")
            event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def _messaging(topic_name: str, operation: str) -> dict[str, Any]:
    return {"messaging.system": "kafka", "messaging.destination.name": topic_name,
            "messaging.operation.type": operation, "messaging.operation.name": operation}
