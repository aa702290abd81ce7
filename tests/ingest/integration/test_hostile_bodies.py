"""Authentic bodies built to stall or crash ingest (issue 13): deeply nested or huge MIME, deeply nested JSON.
Each is refused with a 4xx before the costly work and kept on the DLQ with its reason; the event loop keeps
answering meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from parley_common.events.common import ChannelType
from parley_common.events.inbound import Customer, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.tasks import running
from parley_common.topics import DEAD_LETTERS, INBOUND_ATTACHMENTS, INBOUND_MESSAGES
from parley_ingest.adapters.kafka_link import KafkaLink, UnpublishableEvent
from parley_ingest.app import create_app
from parley_ingest.domain.model import message_event
from parley_ingest.settings import IngestSettings

MAIL = "/webhooks/email/mail"
HEAD = "From: Bob <bob@example.org>\r\nTo: support@acme.example\r\nSubject: hi\r\nMessage-ID: <{id}@example.org>\r\n"


def nested_email(depth: int, lines: int = 1) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n--b{n}\r\n' for n in range(depth))
    closing = "".join(f"\r\n--b{n}--\r\n" for n in reversed(range(depth)))
    return (HEAD.format(id=f"deep{depth}-{lines}") + "MIME-Version: 1.0\r\n" + opening
            + "Content-Type: text/csv\r\nContent-Disposition: attachment\r\n\r\n" + "hello\r\n" * lines
            + closing).encode()


def email_with_attachments(count: int, size: int = 64) -> bytes:
    attachment = ("--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                  'Content-Disposition: attachment; filename="f{n}.bin"\r\n\r\n' + "QUJD" * (size // 4) + "\r\n")
    return (HEAD.format(id=f"many{count}") + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            + "".join(attachment.format(n=n) for n in range(count)) + "--b--\r\n").encode()


@asynccontextmanager
async def ingest(infra: InfraSettings, kit: Any, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(IngestSettings(infra=infra, **settings), channels=kit.channels)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest") as client:
        yield client


# "Refused before the costly work" in CPU seconds of this process (the app runs in it, its parsing threads too):
# the wall clock of a loaded machine also counts the time other processes held the cores. Measured 4-19 ms each;
# the standard library's parser alone spends 0.64 s on the 800-deep email and 1.1 s on the 300,000-line one.
REFUSED_WITHIN_CPU_S = 0.25


async def refused(client: httpx.AsyncClient, kit: Any, body: bytes) -> tuple[httpx.Response, float]:
    """The answer to posting `body`, and the CPU seconds it cost."""
    started = time.process_time()
    response = await client.post(MAIL, content=body, headers=kit.email_headers())
    return response, time.process_time() - started


async def test_an_800_deep_email_is_refused_fast_and_dead_lettered(client, kit, topics) -> None:
    response, took = await refused(client, kit, nested_email(800))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "email_too_deep")
    assert took < REFUSED_WITHIN_CPU_S, f"{took:.2f} s of CPU"
    [letter] = await topics.events(DEAD_LETTERS)
    assert letter.reason == "email_too_deep" and letter.source_topic == "webhooks/email/mail"
    assert await topics.records(INBOUND_MESSAGES) == []


async def test_a_3000_deep_email_and_a_message_rfc822_chain_are_413_never_500(client, kit, topics) -> None:
    chain = (HEAD.format(id="chain") + "Content-Type: message/rfc822\r\n\r\n" * 3000 + "hello").encode()
    for body in (nested_email(3000), chain):
        response, took = await refused(client, kit, body)
        assert (response.status_code, response.json()["error"]["code"]) == (413, "email_too_deep")
        assert took < REFUSED_WITHIN_CPU_S, f"{took:.2f} s of CPU"
    assert sorted(letter.reason for letter in await topics.events(DEAD_LETTERS)) == ["email_too_deep"] * 2


async def test_2000_attachments_are_refused_before_parsing(client, kit, topics) -> None:
    response, took = await refused(client, kit, email_with_attachments(2000))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "email_too_many_parts")
    assert took < REFUSED_WITHIN_CPU_S, f"{took:.2f} s of CPU"
    [letter] = await topics.events(DEAD_LETTERS)
    assert letter.reason == "email_too_many_parts"
    assert await topics.records(INBOUND_ATTACHMENTS) == []


async def test_many_short_lines_in_a_nested_email_are_refused_before_parsing(client, kit, topics) -> None:
    response, took = await refused(client, kit, nested_email(40, lines=300_000))  # ~4 M line checks a level
    assert (response.status_code, response.json()["error"]["code"]) == (413, "email_too_many_lines")
    assert took < REFUSED_WITHIN_CPU_S, f"{took:.2f} s of CPU"


async def test_healthz_stays_fast_while_a_costly_email_is_parsed(kafka_topics: InfraSettings, redis, kit,
                                                                  topics) -> None:
    body = nested_email(45, lines=150_000)  # within the limits; parsed on the event loop it blocked it 2-4 s
    answered: list[float] = []  # when each /healthz answered: a blocked loop shows as a long gap

    async def poll_health(client: httpx.AsyncClient) -> None:
        while True:
            assert (await client.get("/healthz")).status_code == 200
            answered.append(time.perf_counter())
            await asyncio.sleep(0.01)

    # A generous budget: this test is about the event loop, and a loaded CI machine parses slowly.
    async with ingest(kafka_topics, kit, parse_budget_seconds=120) as client:
        started = time.perf_counter()
        async with running(poll_health(client)):
            response = await client.post(MAIL, content=body, headers=kit.email_headers(), timeout=120)
        finished = time.perf_counter()
    assert response.status_code == 200 and response.json()["published"] == 2  # the message and its attachment
    gaps = [later - earlier for earlier, later in zip([started, *answered], [*answered, finished], strict=True)]
    # Parsed on the loop, the email leaves /healthz unanswered for (nearly) the whole request; off it, the longest
    # gap is the machine's scheduling (45-93 ms of 1.7-4.3 s at load 11-16). A quarter of the request's own time
    # tells the two apart however slow a loaded machine makes both; 0.5 s is the bound on a quiet one.
    allowed = max(0.5, (finished - started) / 4)
    assert max(gaps) < allowed, (f"/healthz went unanswered {max(gaps):.2f} s while the email was parsed "
                                 f"({finished - started:.2f} s)")


async def test_an_email_over_the_parse_budget_is_413_and_dead_lettered(kafka_topics: InfraSettings, redis,
                                                                        kit, topics) -> None:
    async with ingest(kafka_topics, kit, parse_budget_seconds=0.001) as client:
        response = await client.post(MAIL, content=email_with_attachments(300, size=20_000),
                                     headers=kit.email_headers())
    assert (response.status_code, response.json()["error"]["code"]) == (413, "parse_budget_exceeded")
    [letter] = await topics.events(DEAD_LETTERS)
    assert letter.reason == "parse_budget_exceeded"


def nested_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


async def test_deeply_nested_json_is_400_and_dead_lettered_never_503(client, kit, topics) -> None:
    messages = kit.fixture("whatsapp_messages.json")
    for depth in (900, 5000):
        text = json.dumps(kit.whatsapp([{**messages["text"], "context": "DEEP"}])).replace('"DEEP"', nested_json(depth))
        body = text.encode()
        response = await client.post("/webhooks/whatsapp/wa-main", content=body, headers=kit.meta_headers(body))
        assert (response.status_code, response.json()["error"]["code"]) == (400, "payload_too_deep")
    assert [letter.reason for letter in await topics.events(DEAD_LETTERS)] == ["payload_too_deep"] * 2
    assert await topics.records(INBOUND_MESSAGES) == []


async def test_non_ascii_bytes_in_a_signature_header_are_401_on_every_signed_channel(client, kit, topics) -> None:
    body = b'{"object": "page", "entry": []}'
    probes = {"/webhooks/whatsapp/wa-main": "x-hub-signature-256", "/webhooks/messenger/fb-page": "x-hub-signature-256",
              "/webhooks/instagram/ig-shop": "x-hub-signature-256", "/webhooks/viber/viber-bot":
              "x-viber-content-signature"}
    for path, header in probes.items():
        for signature in (b"sha256=\xff\xfe" + b"0" * 62, "sha256=é".encode(), b"\xc3\xa9" * 32):
            response = await client.post(path, content=body,
                                         headers={"content-type": "application/json", header: signature})
            assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_signature"), path
    assert await topics.records(DEAD_LETTERS) == []


async def test_an_event_that_cannot_be_serialised_is_unpublishable_not_a_broker_outage(kafka_topics: InfraSettings,
                                                                                       kit) -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}  # within Python's limits, past the serialiser's: it was a 503 "broker_unavailable"
    ctx = kit.context(ChannelType.TELEGRAM, "tg-bot")
    event = message_event(ctx, external_user_id="42", raw=deep, provider_message_id="m1", customer=Customer(),
                          provider_timestamp=ctx.received_at, parts=(TextPart(text="hi"),)).event
    broker = make_broker(kafka_topics.kafka_bootstrap, "ingest-test")
    link = KafkaLink(broker, EventPublisher(broker, kafka_topics.namespace), timeout_seconds=10)
    try:
        with pytest.raises(UnpublishableEvent):
            await link.publish_all([(event, INBOUND_MESSAGES)])
    finally:
        await link.close()


async def test_a_chunked_webhook_body_is_stopped_at_the_limit_while_it_streams(client, kit, topics) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 64 MiB offered, no Content-Length; JSON webhooks stop at 4 MiB
            sent += 1024 * 1024
            yield b" " * (1024 * 1024)

    response = await client.post("/webhooks/telegram/tg-bot", content=chunks(), headers=kit.telegram_headers())
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert sent <= 6 * 1024 * 1024
    assert await topics.records(DEAD_LETTERS) == []
