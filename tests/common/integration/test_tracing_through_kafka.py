"""Traces across a Kafka hop on the real broker: the consumer's span is the child of the producer's (a whole
batch's span is linked to each record's producer), and with an OTLP endpoint set the spans reach a collector over
real HTTP (a small fake collector that decodes OTLP/protobuf)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from known_channels import TEST_CHANNELS
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing_fixtures import FakeCollector, collector, spans  # noqa: F401 - registered by being imported

from parley_common import tracing
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES


def message(text: str) -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(occurred_at=now, tenant_id="acme", correlation_id="corr-traced", channel_id="wa-main",
                           external_user_id="15550002222", channel_type="whatsapp",
                           customer=Customer(wa_id="15550002222"), provider_message_id=f"wamid.{text}",
                           provider_timestamp=now, received_at=now, parts=(TextPart(text=text),))


async def publish_and_consume(settings: InfraSettings, texts: list[str], *, whole_batches: bool = False) -> None:
    """Publish `texts` and wait until a consumer in this process (in a group of its own) handled them all."""
    broker = make_broker(settings.kafka_bootstrap, "tracing-test")
    publisher = EventPublisher(broker, settings.namespace, "test")
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(event: Any) -> None:
        seen.append(event.parts[0].text)
        if len(seen) == len(texts):
            done.set()

    async def handle_batch(events: list[Any]) -> None:
        for event in events:
            await handle(event)

    reads = (Reads(INBOUND_MESSAGES, handle_batch, whole_batch=True) if whole_batches
             else Reads(INBOUND_MESSAGES, handle))
    consume_group(broker, ConsumerGroup("tracing", (reads,)), namespace=settings.namespace, publisher=publisher,
                  service="test", channels=TEST_CHANNELS)
    await broker.start()
    try:
        for text in texts:
            await publisher.publish(message(text), INBOUND_MESSAGES)
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await asyncio.wait_for(broker.stop(), 30)


async def test_the_consumers_span_is_the_child_of_the_producers_span(kafka_topics: InfraSettings,
                                                                      spans: InMemorySpanExporter,  # noqa: F811
                                                                      ) -> None:
    await publish_and_consume(kafka_topics, ["hello"])
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    by_name = {span.name: span for span in spans.get_finished_spans()}
    producer, consumer = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert (producer.kind, consumer.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.attributes is not None and consumer.attributes["messaging.message.id"] == \
        producer.attributes["messaging.message.id"]  # type: ignore[index]


async def test_a_whole_batchs_span_links_each_records_producer(kafka_topics: InfraSettings,
                                                                spans: InMemorySpanExporter,  # noqa: F811
                                                                ) -> None:
    await publish_and_consume(kafka_topics, ["one", "two", "three"], whole_batches=True)
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    finished = spans.get_finished_spans()
    producers = {span.context.span_id for span in finished if span.name == f"send {topic}"}
    batches = [span for span in finished if span.name == f"process {topic}"]
    assert len(producers) == 3 and batches
    assert all(batch.parent is None for batch in batches)
    assert {link.context.span_id for batch in batches for link in batch.links} == producers


async def test_spans_reach_an_otlp_collector_over_http(kafka_topics: InfraSettings,
                                                        collector: FakeCollector,  # noqa: F811
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    provider = tracing.tracer_provider("parley-test", "0.1.0", "test-1")
    assert provider is not None
    tracing.use(provider)
    try:
        await publish_and_consume(kafka_topics, ["exported"])
        assert provider.force_flush(30_000)
    finally:
        tracing.use(None)
        provider.shutdown()
    assert collector.arrived.is_set()
    exported = collector.spans()
    assert {(span.service, span.instance) for span in exported} == {("parley-test", "test-1")}
    topic = INBOUND_MESSAGES.name(kafka_topics.namespace)
    by_name = {span.name: span for span in exported}
    assert by_name[f"process {topic}"].parent_span_id == by_name[f"send {topic}"].span_id
    assert by_name[f"process {topic}"].trace_id == by_name[f"send {topic}"].trace_id
