"""Every service exports its own metrics and traces after real work (all five as real processes, through the
public APIs only). Metrics: Kafka records handled per topic with their handler time, consumer lag, published
events, MongoDB and Redis command latency, HTTP requests by route template, outbound's sends by state and window
refusals by reason, media's states; the names scraped here are the ones deploy/monitoring's dashboard and alerts
use (a test reads their expressions and finds every metric they name on a running service). Traces, exported over
OTLP/HTTP to a fake collector (the standard OTEL_EXPORTER_OTLP_ENDPOINT set, as an operator would): a customer's
webhook carrying a caller's `traceparent` is ingest's server span in that trace, and everything it causes —
contacts, the router, outbound and media handling the message, and the next hop's consumer handling what contacts
published — continues it, each consumer span the child of the span that produced its record; an agent's reply is
sent by outbound's sender in a batch span linked to the reply's trace."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_customer import AGENT, Journey
from e2e_desk import Desk
from e2e_fixtures import system_fixture
from e2e_journey import NotYet, eventually, png_bytes
from e2e_system import SERVICES, WHATSAPP, System
from local_server import free_port
from prometheus_client.parser import text_string_to_metric_families
from tracing_fixtures import ExportedSpan, FakeCollector, serving

# The collector is up before the services start (listed first), so no export is lost.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("trace_collector", "staffed")]
COLLECTOR_PORT = free_port()
system = system_fixture("observability", overrides={
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{COLLECTOR_PORT}", "OTEL_BSP_SCHEDULE_DELAY": "200"})
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
Samples = dict[str, list[tuple[dict[str, str], float]]]
K8S = str(Path(__file__).resolve().parents[2] / "deploy" / "k8s")  # the alerts and dashboard are defined there


async def scrape(http: httpx.AsyncClient, system: System, service: str) -> Samples:
    response = await http.get(f"{system.url(service)}/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(value for found, value in samples.get(name, []) if labels.items() <= found.items())


async def test_each_service_exports_what_it_did(system: System, http: httpx.AsyncClient) -> None:
    customer = Journey(system, http)
    wamid, _ = await customer.customer_writes("Where is my parcel?")
    await customer.open_conversation_with(wamid)
    await customer.window_seen()
    sent = await customer.agent_replies("On its way")
    assert sent.status_code == 202, sent.text
    await customer.outbound_state(sent.json()["message_id"], "sent")
    stranger = Journey(system, http)  # never wrote: the window policy refuses a free-form message
    refused = await stranger.agent_replies("Hello?")
    assert refused.status_code == 422, refused.text
    uploaded = await Desk(system, http).upload(AGENT, WHATSAPP.id, "receipt.png", png_bytes(4, 4), "image/png")
    assert uploaded["state"] == "stored"

    inbound = "parley.inbound.messages.v1"
    for service in ("contacts", "router", "outbound", "media"):
        scraped = await scrape(http, system, service)
        assert total(scraped, "parley_consumer_records_total", service=service, topic=inbound,
                     outcome="handled") >= 1, service
        assert total(scraped, "parley_consumer_handler_seconds_count", service=service, topic=inbound) >= 1
        assert total(scraped, "parley_mongodb_command_seconds_count", service=service) >= 1, service

    router = await scrape(http, system, "router")
    assert total(router, "parley_events_published_total", topic="parley.conversations.events.v1",
                 event_type="ConversationChanged") >= 1
    assert total(router, "parley_redis_command_seconds_count", service="router", outcome="ok") >= 1
    assert total(router, "parley_http_requests_total", route="/v1/conversations", status="200") >= 1

    outbound = await scrape(http, system, "outbound")
    assert total(outbound, "parley_outbound_messages_total", channel_type="whatsapp", state="sent") >= 1
    assert total(outbound, "parley_outbound_window_refusals_total", channel_type="whatsapp",
                 reason="business_initiated") >= 1  # outside any window: only a template may open
    assert total(outbound, "parley_outbound_messages_total", state="refused", reason="no_approved_template") >= 1
    assert total(outbound, "parley_http_requests_total", route="/v1/messages", status="422") >= 1

    media = await scrape(http, system, "media")
    assert total(media, "parley_media_states_total", state="stored") >= 1

    ingest = await scrape(http, system, "ingest")
    assert total(ingest, "parley_ingest_requests_total", outcome="accepted") >= 1
    assert total(ingest, "parley_redis_command_seconds_count", service="ingest") >= 1

    async def lag_sampled() -> Samples:  # every 15 s, once the consumers hold their partitions
        scraped = await scrape(http, system, "contacts")
        if not scraped.get("parley_consumer_lag_records"):
            raise NotYet("no lag sample yet")
        return scraped

    contacts = await eventually(lag_sampled, within=60, what="a lag sample")
    lag = {labels["topic"]: value for labels, value in contacts["parley_consumer_lag_records"]}
    assert inbound in lag and lag[inbound] >= 0


async def test_the_alerts_and_the_dashboard_name_metrics_the_services_serve(system: System,
                                                                           http: httpx.AsyncClient) -> None:
    sys.path.insert(0, K8S)
    from monitoring import expressions
    from validate_monitoring import CLUSTER_METRICS, metric_names

    served: set[str] = set()
    for service in SERVICES:
        response = await http.get(f"{system.url(service)}/metrics")
        served |= {family.name for family in text_string_to_metric_families(response.text)}
    named = {re.sub(r"_(total|bucket|count|sum)$", "", name) for expr in expressions() for name in metric_names(expr)}
    assert named - CLUSTER_METRICS - served == set()


@pytest.fixture(scope="module")
def trace_collector() -> Iterator[FakeCollector]:
    yield from serving(FakeCollector(COLLECTOR_PORT))


def caller(trace_id: str, span_id: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=30.0, headers={"traceparent": f"00-{trace_id}-{span_id}-01"})


def named(spans: list[ExportedSpan], service: str, name: str) -> list[ExportedSpan]:
    found = [span for span in spans if span.service == f"parley-{service}" and span.name == name]
    if not found:
        raise NotYet(f"no {service} span {name!r} yet")
    return found


def linked(spans: list[ExportedSpan], service: str, name: str, to: list[ExportedSpan]) -> list[ExportedSpan]:
    """Whole batches' spans named `name` linked to a record one of the spans `to` sent."""
    senders = {(span.trace_id, span.span_id) for span in to}
    found = [span for span in spans if span.service == f"parley-{service}" and span.name == name
             and senders & set(span.links)]
    if not found:
        raise NotYet(f"no {service} span {name!r} linked to {to[0].name!r} yet")
    return found


def sent_in(spans: list[ExportedSpan], service: str, name: str, batches: list[ExportedSpan]) -> list[ExportedSpan]:
    """The spans named `name` that `service` started within one of the `batches` spans."""
    within = {(span.trace_id, span.span_id) for span in batches}
    found = [span for span in spans if span.service == f"parley-{service}" and span.name == name
             and (span.trace_id, span.parent_span_id) in within]
    if not found:
        raise NotYet(f"no {service} span {name!r} within {batches[0].name!r} yet")
    return found


async def test_a_customers_message_is_one_trace_across_the_services(system: System,
                                                                    trace_collector: FakeCollector) -> None:
    async with caller(CALLER_TRACE, CALLER_SPAN) as client:
        wamid, _ = await Journey(system, client).customer_writes("Is my parcel traced?")

    inbound = f"{system.namespace}.parley.inbound.messages.v1"
    contacts_events = f"{system.namespace}.parley.contacts.events.v1"

    async def whole_trace() -> dict[str, list[ExportedSpan]]:
        every = trace_collector.spans()
        spans = [span for span in every if span.trace_id == CALLER_TRACE]
        published = named(spans, "ingest", f"send {inbound}")
        # contacts stores a batch's customers at once and publishes their events in the batch's span
        contacts_batch = linked(every, "contacts", f"process {inbound}", published)
        contact_published = sent_in(every, "contacts", f"send {contacts_events}", contacts_batch)
        return {"webhook": named(spans, "ingest", "POST /webhooks/{channel_type}/{channel_id}"),
                "published": published,
                **{service: named(spans, service, f"process {inbound}") for service in ("router", "media")},
                # outbound keeps its projections a batch at a time, the router its contact cards and contacts its
                # customers: one span per batch, linked to each record's send span (a batch has many producers)
                "outbound": linked(every, "outbound", f"process {inbound}", published),
                "contacts_batch": contacts_batch,
                "contact_published": contact_published,
                "contact_to_router": linked(every, "router", f"process {contacts_events}", contact_published)}

    trace = await eventually(whole_trace, within=90, what="the message's spans from every service")
    (webhook,), (published,) = trace["webhook"], trace["published"]
    assert webhook.parent_span_id == CALLER_SPAN
    assert published.parent_span_id == webhook.span_id
    for service in ("router", "media"):  # (a redelivery after a rebalance: a second child)
        assert {span.parent_span_id for span in trace[service]} == {published.span_id}, service
    for batch in trace["outbound"] + trace["contacts_batch"] + trace["contact_to_router"]:
        assert batch.parent_span_id == "", batch
    assert wamid  # the webhook carried this message


async def test_an_agents_reply_is_sent_in_a_batch_linked_to_its_trace(system: System,
                                                                      trace_collector: FakeCollector) -> None:
    reply_trace, reply_span = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    async with httpx.AsyncClient(timeout=30.0) as plain:
        customer = Journey(system, plain)
        await customer.customer_writes("Hello")
        await customer.window_seen()
    async with caller(reply_trace, reply_span) as client:
        sent = await Journey(system, client, phone=customer.phone).agent_replies("On its way")
    assert sent.status_code == 202, sent.text
    requests = f"{system.namespace}.parley.outbound.requests.v1"

    async def linked_batch() -> tuple[ExportedSpan, ExportedSpan]:
        spans = trace_collector.spans()
        (published,) = named([span for span in spans if span.trace_id == reply_trace], "outbound", f"send {requests}")
        batches = [span for span in named(spans, "outbound", f"process {requests}")
                   if (reply_trace, published.span_id) in span.links]
        if not batches:
            raise NotYet("no sender batch linked to the reply yet")
        return published, batches[0]

    published, batch = await eventually(linked_batch, within=90, what="the sender's batch span")
    assert batch.parent_span_id == "" and batch.trace_id != reply_trace  # a batch has many producers: links
    assert published.parent_span_id != ""  # the POST /v1/messages server span, the caller's child
