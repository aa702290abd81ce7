"""Broadcasts on the real broker, database and cache, against the fake provider: audience resolution from the
contacts projection, variable mapping with fallbacks, every skip reason, replies, pause / resume / cancel, agent
replies ahead of a running broadcast, and provider throttling slowing the broadcast only.

The module runs its own app: a few WhatsApp numbers of its own (each its own rate bucket), small pages, a short
throttle hold. Contacts arrive as contacts would publish them (parley.contacts.events.v1), many at once through
a batching producer."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import statistics
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT, cache_restarts_empty, customer_message, eventually, manager, publisher, read_topic

from parley_common.auth import issue_token
from parley_common.channels import Channels
from parley_common.cloudevents import headers_for
from parley_common.events.contacts import ContactBlocked, ContactCreated, ContactLabelled, ContactUpdated, Identity
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import MarketingPreferenceChanged
from parley_common.kafka import ensure_topics
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES, INBOUND_PREFERENCES, OUTBOUND_MESSAGES, Topic
from parley_outbound.app import create_app
from parley_outbound.settings import OutboundSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")
NUMBERS = ("wa-b1", "wa-b2", "wa-slow", "wa-prio", "wa-soak", "wa-throttle")
RATES = {"wa-slow": 25.0, "wa-prio": 50.0, "wa-soak": 50.0, "wa-throttle": 40.0}
TEMPLATE = {"name": "promo", "language": "en_US", "category": "marketing", "status": "approved",
            "body": "Hi {{1}}, your tier is {{2}}.", "variables": [{"name": "1"}, {"name": "2"}]}
THROTTLE_HOLD = 1.5


@pytest.fixture(scope="module")
def channels(fake_provider: FakeProvider) -> Channels:
    meta = {"app_secret": "s", "verify_token": "v", "graph_api_base": f"{fake_provider.base_url}/graph"}
    numbers = [{"id": number, "tenant_id": TENANT, "type": "whatsapp", "phone_number_id": f"77{index}",
                "waba_id": "9009", "access_token": "wa-token", **meta} for index, number in enumerate(("wa-main",
                                                                                                      *NUMBERS))]
    telegram = {"id": "tg-bot", "tenant_id": TENANT, "type": "telegram", "bot_token": "123:ABC",
                "webhook_secret": "w", "api_base": f"{fake_provider.base_url}/telegram"}
    return Channels.parse({"channels": [*numbers, telegram]})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(module_infra: InfraSettings, channels: Channels, fake_provider: FakeProvider) -> AsyncIterator[FastAPI]:
    await ensure_topics(module_infra.kafka_bootstrap, module_infra.namespace)
    settings = OutboundSettings(infra=module_infra, backoff_base_seconds=0.05, max_attempts=2, send_consumers=1,
                                media_base_url=f"{fake_provider.base_url}/media", channel_rate_per_second=RATES,
                                broadcast_page_records=50, broadcast_pages_in_flight=2,
                                broadcast_throttle_hold_seconds=THROTTLE_HOLD)
    application = create_app(settings, channels=channels)
    async with LifespanManager(application, startup_timeout=90, shutdown_timeout=60):
        yield application


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def boss(app: FastAPI, module_infra: InfraSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with manager(app, module_infra) as client:
        for number in NUMBERS:
            response = await client.put(f"/v1/templates/{number}", json=TEMPLATE)
            assert response.status_code == 200, response.text
        yield client


def contact_event(kind: type, contact_id: str, **fields: object) -> Envelope:
    return kind(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-contacts",  # type: ignore[no-any-return]
                contact_id=contact_id, **fields)


async def produce(infra: InfraSettings, topic: Topic, events: Iterable[Envelope]) -> None:
    """Many events at once, batched by the producer (as contacts' own publisher would under load)."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, linger_ms=20, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(topic.name(infra.namespace), event.model_dump_json().encode(),
                                    key=event.partition_key(),
                                    headers=[(name, value.encode()) for name, value in headers_for(event).items()])
                for event in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def definition(channel_ids: list[str], audience: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "spring", "channel_ids": channel_ids, "audience": audience,
            "template": {"name": "promo", "language": "en_US", "variables": {
                "1": {"field": "custom_fields.first_name", "fallback": "there"},
                "2": {"field": "custom_fields.tier"}}}, **extra}


async def preview_size(boss: httpx.AsyncClient, body: dict[str, Any], size: int) -> dict[str, Any]:
    """The preview, once the contacts projection holds the whole audience (its partitions catch up apart)."""
    answer: dict[str, Any] = {}

    async def complete() -> bool:
        response = await boss.post("/v1/broadcasts/preview", json=body)
        assert response.status_code == 200, response.text
        answer.update(response.json())
        print("preview", answer["audience_size"], time.monotonic())
        if answer["audience_size"] == size:
            return True
        await asyncio.sleep(1)  # a preview reads the whole audience: not in a tight loop
        return False
    await eventually(complete, within=90)
    return answer


async def progress_until(boss: httpx.AsyncClient, broadcast_id: str, done: Any, within: float = 60) -> dict[str, Any]:
    view: dict[str, Any] = {}

    async def reached() -> bool:
        view.update((await boss.get(f"/v1/broadcasts/{broadcast_id}")).json())
        return bool(done(view))
    await eventually(reached, within=within)
    return view


async def seed_vip_audience(app: FastAPI, module_infra: InfraSettings) -> None:
    """v1 (all fields), v2 (no first name: the fallback), v3 (no tier: skipped), v4 (Telegram only: no identity),
    v5 (blocked), v6 (stopped marketing), v7 (not a VIP: not in the audience)."""
    def on(number: str, user: str) -> tuple[Identity, ...]:
        return (Identity(channel_id=number, external_user_id=user),)
    events: list[Envelope] = []
    people = {"v1": on("wa-b1", "4915100001"), "v2": on("wa-main", "4915100002"), "v3": on("wa-b1", "4915100003"),
              "v4": on("tg-bot", "915100004"), "v5": on("wa-b1", "4915100005"), "v6": on("wa-b2", "4915100006"),
              "v7": on("wa-b1", "4915100007")}
    for contact, identities in people.items():
        events.append(contact_event(ContactCreated, contact, identities=identities, display_name=contact.upper()))
        if contact != "v7":
            events.append(contact_event(ContactLabelled, contact, labels=("vip",), added=("vip",)))
        fields = {"custom_fields.first_name": "Ann", "custom_fields.tier": "gold"}
        if contact == "v2":
            del fields["custom_fields.first_name"]
        if contact == "v3":
            del fields["custom_fields.tier"]
        events.append(contact_event(ContactUpdated, contact, changed=fields))
    events.append(contact_event(ContactBlocked, "v5", identity=people["v5"][0]))
    await produce(module_infra, CONTACTS_EVENTS, events)
    now = datetime.now(UTC)
    await publisher(app).publish(MarketingPreferenceChanged(
        occurred_at=now, tenant_id=TENANT, correlation_id="c-pref", channel_id="wa-b2", external_user_id="4915100006",
        channel_type="whatsapp", opted_out=True, provider_timestamp=now), INBOUND_PREFERENCES)


async def test_audience_mapping_skips_progress_and_replies(app: FastAPI, boss: httpx.AsyncClient,
                                                           client: httpx.AsyncClient, fake_provider: FakeProvider,
                                                           module_infra: InfraSettings) -> None:
    await seed_vip_audience(app, module_infra)
    body = definition(["wa-b1", "wa-b2"], {"labels": ["vip"]})

    async def opted_out_seen() -> bool:
        response = await boss.post("/v1/broadcasts/preview", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        skipped = answer["skipped"]
        return answer["audience_size"] == 6 and skipped["opted_out"] == 1 and skipped["blocked"] == 1
    await eventually(opted_out_seen, within=60)
    preview = await preview_size(boss, body, 6)
    assert preview["skipped"] == {"blocked": 1, "opted_out": 1, "missing_variable": 1, "no_identity": 1}
    assert preview["sendable"] == 2 and preview["refused"] == {}
    assert sorted(sample["text"] for sample in preview["samples"]) == ["Hi Ann, your tier is gold.",
                                                                       "Hi there, your tier is gold."]
    # v2 talks to wa-main, not in the pool: WhatsApp reaches the same phone from a pool number
    assert {s["external_user_id"]: s["channel_id"] in ("wa-b1", "wa-b2") for s in preview["samples"]} == {
        "4915100001": True, "4915100002": True}
    gold = await boss.post("/v1/broadcasts/preview", json=definition(["wa-b1"], {
        "labels": ["vip"], "custom_fields": {"first_name": "Ann"}, "channel_ids": ["wa-b1"], "opted_in": True}))
    assert gold.json()["audience_size"] == 3  # v1, v3, v5 (v6 is on wa-b2 and opted out anyway)
    explicit = await boss.post("/v1/broadcasts/preview", json=definition(["wa-b1"], {"contact_ids": ["v1", "v7"]}))
    assert explicit.json()["audience_size"] == 2

    created = await boss.post("/v1/broadcasts", json=body)
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    view = await progress_until(boss, broadcast_id, lambda v: v["state"] == "completed")
    progress = view["progress"]
    assert progress["recipients"] == 6 and progress["sent"] == 2 and progress["pending"] == 0, progress
    assert progress["skipped"] == {"blocked": 1, "opted_out": 1, "missing_variable": 1, "no_identity": 1}
    assert progress["failed"] == {}
    sent = fake_provider.bodies_for("4915100001")[-1]["template"]
    assert sent["name"] == "promo"
    assert [p["text"] for p in sent["components"][0]["parameters"]] == ["Ann", "gold"]
    fallback = fake_provider.bodies_for("4915100002")[-1]["template"]["components"][0]["parameters"]
    assert [p["text"] for p in fallback] == ["there", "gold"]
    for skipped_user in ("4915100003", "4915100005", "4915100006", "4915100007"):
        assert fake_provider.bodies_for(skipped_user) == []

    events = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 4,
                              where=lambda e: e.broadcast_id == broadcast_id and e.status.value in ("sent", "refused"))
    assert {e.external_user_id for e in events if e.status.value == "sent"} == {"4915100001", "4915100002"}
    assert {e.pricing_category for e in events if e.status.value == "sent"} == {"marketing"}
    assert {e.reason for e in events if e.status.value == "refused"} == {"customer_blocked", "marketing_opted_out"}

    rows = (await boss.get(f"/v1/broadcasts/{broadcast_id}/recipients", params={"limit": 4})).json()
    assert len(rows["recipients"]) == 4 and rows["next"] == rows["recipients"][-1]["id"]
    rest = (await boss.get(f"/v1/broadcasts/{broadcast_id}/recipients", params={"after": rows["next"]})).json()
    statuses = {row["contact_id"]: (row["status"], row["reason"]) for row in rows["recipients"] + rest["recipients"]}
    assert statuses == {"v1": ("sent", None), "v2": ("sent", None), "v3": ("skipped", "missing_variable"),
                        "v4": ("skipped", "no_identity"), "v5": ("skipped", "blocked"),
                        "v6": ("skipped", "opted_out")}
    export = await boss.get(f"/v1/broadcasts/{broadcast_id}/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert {line["contact_id"]: line["status"] for line in lines}["v3"] == "skipped" and len(lines) == 6

    cache = redis_client(module_infra.redis_url)
    try:  # which broadcast the customer got is restored from the database, and their answer waits for it
        await cache_restarts_empty(cache, module_infra)
    finally:
        await cache.aclose()
    await publisher(app).publish(customer_message("wa-b1", "whatsapp", "4915100001", timedelta(0)), INBOUND_MESSAGES)
    await progress_until(boss, broadcast_id, lambda v: v["progress"]["replied"] == 1)
    stream = await boss.get(f"/v1/broadcasts/{broadcast_id}/stream")  # finished: its last state, then the end
    assert stream.headers["content-type"].startswith("text/event-stream")
    event = dict(line.split(": ", 1) for line in stream.text.strip().splitlines())
    assert event["event"] == "progress" and json.loads(event["data"])["state"] == "completed"
    assert json.loads(event["data"])["progress"]["replied"] == 1

    assert (await client.post("/v1/broadcasts", json=body)).status_code == 403  # agents do not broadcast
    stranger = issue_token(module_infra.jwt_secret.get_secret_value(), "globex", "eve", ["owner"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outbound",
                                 headers={"Authorization": f"Bearer {stranger}"}) as foreign:
        gone = await foreign.get(f"/v1/broadcasts/{broadcast_id}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "broadcast_not_found"
        assert (await foreign.post("/v1/broadcasts/preview", json=body)).json()["error"]["code"] == "unknown_channel"


async def test_definitions_the_template_cannot_take_are_refused(boss: httpx.AsyncClient) -> None:
    def refused(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    unmapped = definition(["wa-b1"], {})
    del unmapped["template"]["variables"]["2"]
    assert refused(await boss.post("/v1/broadcasts", json=unmapped)) == (422, "template_variable_missing")
    extra = definition(["wa-b1"], {})
    extra["template"]["variables"]["3"] = {"constant": "x"}
    assert refused(await boss.post("/v1/broadcasts", json=extra)) == (422, "template_variable_unknown")
    unknown = definition(["wa-b1"], {})
    unknown["template"]["name"] = "nope"
    assert refused(await boss.post("/v1/broadcasts", json=unknown)) == (422, "template_not_found")
    mixed = definition(["wa-b1", "tg-bot"], {})
    assert refused(await boss.post("/v1/broadcasts", json=mixed)) == (422, "channel_types_differ")
    both = definition(["wa-b1"], {})
    both["template"]["variables"]["1"] = {"field": "custom_fields.first_name", "constant": "x"}
    assert refused(await boss.post("/v1/broadcasts", json=both)) == (422, "validation_failed")
    await boss.put("/v1/templates/wa-b1", json={**TEMPLATE, "name": "draft", "status": "pending"})
    pending = definition(["wa-b1"], {})
    pending["template"]["name"] = "draft"
    assert refused(await boss.post("/v1/broadcasts", json=pending)) == (422, "template_not_approved")
    missing = await boss.post("/v1/broadcasts/nope/pause")
    assert refused(missing) == (404, "broadcast_not_found")


async def seed_numbered(infra: InfraSettings, prefix: str, number: str, count: int) -> None:
    """`count` contacts, each with an identity on `number` only."""
    await produce(infra, CONTACTS_EVENTS, [contact_event(ContactCreated, f"{prefix}{index:05d}", identities=(
        Identity(channel_id=number, external_user_id=f"{prefix}-{index:05d}"),)) for index in range(count)])


def constant_definition(number: str) -> dict[str, Any]:
    """Everyone with an identity on `number`, the display name (never given here: the fallback) and a constant."""
    return {"name": number, "channel_ids": [number], "audience": {"channel_ids": [number]},
            "template": {"name": "promo", "language": "en_US", "variables": {
                "1": {"field": "display_name", "fallback": "friend"}, "2": {"constant": "silver"}}}}


def sent_to(fake_provider: FakeProvider, prefix: str) -> list[str]:
    return [str(body["to"]) for _, body in list(fake_provider.requests) if str(body.get("to", "")).startswith(prefix)]


async def test_pause_resume_and_cancel(boss: httpx.AsyncClient, fake_provider: FakeProvider,
                                       module_infra: InfraSettings) -> None:
    await seed_numbered(module_infra, "pz", "wa-slow", 400)
    body = constant_definition("wa-slow")
    await preview_size(boss, body, 400)
    broadcast_id = (await boss.post("/v1/broadcasts", json=body)).json()["id"]
    await progress_until(boss, broadcast_id, lambda v: v["progress"]["sent"] >= 30)
    paused = await boss.post(f"/v1/broadcasts/{broadcast_id}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    again = await boss.post(f"/v1/broadcasts/{broadcast_id}/pause")
    assert again.status_code == 409 and again.json()["error"]["details"] == {"state": "paused"}
    # the pages already in the pipeline finish (at most two of 50 at 25/s), then nothing more goes out
    settled = await quiet(fake_provider, "pz-")
    assert settled < 400
    assert (await boss.post(f"/v1/broadcasts/{broadcast_id}/resume")).json()["state"] == "running"
    await eventually(lambda: _grew(fake_provider, settled + 20), within=30)
    cancelled = await boss.post(f"/v1/broadcasts/{broadcast_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert (await boss.post(f"/v1/broadcasts/{broadcast_id}/resume")).status_code == 409
    final = await quiet(fake_provider, "pz-")
    sent = sent_to(fake_provider, "pz-")
    assert len(sent) == final < 400
    assert len(set(sent)) == len(sent)  # nobody twice
    view = await progress_until(boss, broadcast_id, lambda v: v["progress"]["queued"] == 0)
    assert view["progress"]["sent"] == final and view["progress"]["pending"] == 400 - final


async def quiet(fake_provider: FakeProvider, prefix: str, for_seconds: float = 2.0) -> int:
    """How many sends reached the provider once none came for `for_seconds` (at 25/s one comes every 40 ms)."""
    count, since = len(sent_to(fake_provider, prefix)), time.monotonic()
    deadline = since + 30
    while time.monotonic() - since < for_seconds:
        assert time.monotonic() < deadline, "the broadcast kept sending"
        await asyncio.sleep(0.1)
        if (now := len(sent_to(fake_provider, prefix))) != count:
            count, since = now, time.monotonic()
    return count


async def _grew(fake_provider: FakeProvider, at_least: int) -> bool:
    return len(sent_to(fake_provider, "pz-")) >= at_least


async def agent_reply_latency(client: httpx.AsyncClient, fake_provider: FakeProvider, number: str,
                              user: str) -> float:
    """Seconds from the agent's POST to the provider receiving the reply."""
    started = time.monotonic()
    accepted = await client.post("/v1/messages", json={"channel_id": number, "recipient": {"external_user_id": user},
                                                       "content": {"kind": "text", "text": "an agent's answer"}})
    assert accepted.status_code == 202, accepted.text
    while not fake_provider.bodies_for(user):
        assert time.monotonic() - started < 30, "the agent's reply never reached the provider"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def agents_first(app: FastAPI, boss: httpx.AsyncClient, client: httpx.AsyncClient, fake_provider: FakeProvider,
                       infra: InfraSettings, audience: int, number: str) -> None:
    """Agents' replies on the number of a running broadcast of `audience` recipients reach the provider within a
    second; behind the broadcast they would wait audience / rate seconds (40 s and more here)."""
    await seed_numbered(infra, number, number, audience)
    customers = [f"{number}-agent-{index:02d}" for index in range(12)]
    for user in customers:
        await publisher(app).publish(customer_message(number, "whatsapp", user, timedelta(minutes=5)),
                                     INBOUND_MESSAGES)
    body = constant_definition(number)
    await preview_size(boss, body, audience)
    before = [await agent_reply_latency(client, fake_provider, number, user) for user in customers[:2]]
    broadcast_id = (await boss.post("/v1/broadcasts", json=body)).json()["id"]
    await progress_until(boss, broadcast_id, lambda v: v["progress"]["sent"] >= 100)
    during = [await agent_reply_latency(client, fake_provider, number, user) for user in customers[2:]]
    view = (await boss.get(f"/v1/broadcasts/{broadcast_id}")).json()
    assert (await boss.post(f"/v1/broadcasts/{broadcast_id}/cancel")).status_code == 200
    assert view["state"] == "running" and view["progress"]["pending"] > audience // 2, view["progress"]
    # Behind the broadcast a reply would wait pending / rate: 40 s and more. Ahead of it, it waits for a token and
    # for the database writes the broadcast keeps making (the local database is one Python process on a shared
    # machine): about what a reply took before the broadcast (measured in this run: the machine's load moves
    # both), a few seconds at worst (bench/broadcast.py measures the p99).
    assert statistics.median(during) < max(1.0, 3 * statistics.median(before)), (before, during)
    assert max(during) < 5.0, (before, during)


async def test_agent_replies_go_first_during_a_broadcast(app: FastAPI, boss: httpx.AsyncClient,
                                                         client: httpx.AsyncClient, fake_provider: FakeProvider,
                                                         module_infra: InfraSettings) -> None:
    await agents_first(app, boss, client, fake_provider, module_infra, 2_000, "wa-prio")


@pytest.mark.slow_soak
async def test_agent_replies_go_first_during_a_10000_recipient_broadcast(
        app: FastAPI, boss: httpx.AsyncClient, client: httpx.AsyncClient, fake_provider: FakeProvider,
        module_infra: InfraSettings) -> None:
    await agents_first(app, boss, client, fake_provider, module_infra, 10_000, "wa-soak")


async def test_throttling_slows_the_broadcast_not_the_agents(app: FastAPI, boss: httpx.AsyncClient,
                                                             client: httpx.AsyncClient, fake_provider: FakeProvider,
                                                             module_infra: InfraSettings) -> None:
    # the first recipient (by contact id) is throttled twice (130429, HTTP 429), the others are not
    users = ["flaky-130429-2"] + [f"th-{index:03d}" for index in range(1, 40)]
    fake_provider.calls["flaky-130429-2"] = 0  # the session's fake counts this recipient for the adapters' tests too
    await produce(module_infra, CONTACTS_EVENTS, [contact_event(ContactCreated, f"th{index:03d}", identities=(
        Identity(channel_id="wa-throttle", external_user_id=user),)) for index, user in enumerate(users)])
    agent_customer = "4918000001"
    await publisher(app).publish(customer_message("wa-throttle", "whatsapp", agent_customer, timedelta(minutes=5)),
                                 INBOUND_MESSAGES)
    body = constant_definition("wa-throttle")
    await preview_size(boss, body, 40)
    started = time.monotonic()
    broadcast_id = (await boss.post("/v1/broadcasts", json=body)).json()["id"]
    await eventually(lambda: _called(fake_provider, "flaky-130429-2", 1), within=30)
    assert await agent_reply_latency(client, fake_provider, "wa-throttle", agent_customer) < 1.0
    view = await progress_until(boss, broadcast_id, lambda v: v["state"] == "completed")
    elapsed = time.monotonic() - started
    assert view["progress"]["sent"] == 40 and view["progress"]["failed"] == {}, view["progress"]
    assert fake_provider.calls["flaky-130429-2"] == 3
    # 40 messages at 40/s take ~1 s; two throttling answers held the broadcast lane twice 1.5 s
    assert elapsed > 2 * THROTTLE_HOLD, elapsed


async def _called(fake_provider: FakeProvider, user: str, times: int) -> bool:
    return fake_provider.calls[user] >= times

