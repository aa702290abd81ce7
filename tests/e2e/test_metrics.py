"""Every service exports its own metrics after real work (all five as real processes, through the public APIs
only): Kafka records handled per topic with their handler time, consumer lag, published events, MongoDB and
Redis command latency, HTTP requests by route template, outbound's sends by state and window refusals by
reason, media's states. The names scraped here are the ones deploy/monitoring's dashboard and alerts use
(the last test here reads their expressions and finds every metric they name on a running service)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest
from e2e_customer import AGENT, Journey
from e2e_desk import Desk
from e2e_journey import NotYet, eventually, png_bytes
from e2e_system import SERVICES, WHATSAPP, System
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.usefixtures("staffed")]
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
