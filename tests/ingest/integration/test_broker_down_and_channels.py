"""503 while Kafka is unreachable (and nothing marked as seen), and every channel end to end."""

from __future__ import annotations

import asyncio
import base64
import socket

import httpx
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from parley_common.events.inbound import DeliveryStatusReported, MessageReceived
from parley_common.topics import INBOUND_ATTACHMENTS, INBOUND_MESSAGES, INBOUND_STATUSES
from parley_ingest.app import create_app
from parley_ingest.settings import IngestSettings

WA = "/webhooks/whatsapp/wa-main"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_503_when_the_broker_is_unreachable_and_the_retry_is_not_lost(kafka_topics, redis: Redis, kit,
                                                                          client, topics) -> None:
    down = kafka_topics.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed_port()}"})
    app = create_app(IngestSettings(infra=down, publish_timeout_seconds=2), channels=kit.channels)
    body = kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]]))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest"
    ) as unlucky:
        response = await asyncio.wait_for(unlucky.post(WA, content=body, headers=kit.meta_headers(body)), 15)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "broker_unavailable"
        assert (await unlucky.get("/readyz")).status_code == 503
    assert [key async for key in redis.scan_iter(match=f"{kafka_topics.redis_prefix()}ingest:dedup:*")] == []
    # The provider retries against a healthy ingest: the event is stored, not taken for a duplicate.
    retried = await client.post(WA, content=body, headers=kit.meta_headers(body))
    assert retried.json()["published"] == 1
    assert len(await topics.records(INBOUND_MESSAGES)) == 1


async def test_every_channel_reaches_kafka(client, kit, topics) -> None:
    messenger = kit.body(kit.meta("page", kit.fixture("messenger_events.json")["text"],
                                  kit.fixture("messenger_events.json")["delivery"]))
    instagram = kit.body(kit.meta("instagram", kit.fixture("instagram_events.json")["text"]))
    telegram = kit.body(kit.fixture("telegram_updates.json")["photo"])
    viber = kit.body(kit.fixture("viber_callbacks.json")["text"])
    viber_seen = kit.body(kit.fixture("viber_callbacks.json")["seen"])
    email = kit.eml("email_with_attachments.eml")
    posts = [
        ("/webhooks/messenger/fb-page", messenger, kit.meta_headers(messenger), 3),
        ("/webhooks/instagram/ig-shop", instagram, kit.meta_headers(instagram), 1),
        ("/webhooks/telegram/tg-bot", telegram, kit.telegram_headers(), 1),
        ("/webhooks/viber/viber-bot", viber, kit.viber_headers(viber), 1),
        ("/webhooks/viber/viber-bot", viber_seen, kit.viber_headers(viber_seen), 1),
        ("/webhooks/email/mail", email, kit.email_headers(), 3),
    ]
    for path, body, headers, published in posts:
        response = await client.post(path, content=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["published"] == published, path

    messages = {e.channel_id: e for e in await topics.events(INBOUND_MESSAGES)}
    assert all(isinstance(e, MessageReceived) for e in messages.values())
    assert messages["fb-page"].external_user_id == "6000000000000061"
    assert messages["ig-shop"].external_user_id == "7000000000000071"
    assert messages["tg-bot"].parts[0].reference == "AgACAgQAAxkBAAIEX1-large"
    assert messages["viber-bot"].parts[0].text == "Hi, my order 4471?"
    mail = messages["mail"]
    assert mail.external_user_id == "alice@customer.example" and len(mail.parts) == 3
    statuses = await topics.events(INBOUND_STATUSES)
    assert all(isinstance(s, DeliveryStatusReported) for s in statuses)
    assert sorted(s.channel_id for s in statuses) == ["fb-page", "fb-page", "viber-bot"]
    attachments = await topics.events(INBOUND_ATTACHMENTS)
    assert sorted(a.attachment_id for a in attachments) == sorted(p.attachment_id for p in mail.parts[1:])
    invoice = next(a for a in attachments if a.file_name == "façture.pdf")
    assert base64.b64decode(invoice.content_base64) == b"%PDF-1.4 fake invoice"


async def test_viber_conversation_started_is_answered_with_the_channels_welcome_message(client, kit, topics) -> None:
    started = kit.body(kit.fixture("viber_callbacks.json")["conversation_started"])
    welcomed = await client.post("/webhooks/viber/viber-welcome", content=started, headers=kit.viber_headers(started))
    assert welcomed.status_code == 200
    # Viber's rule: the send_message JSON without `receiver`, in the callback's answer (reference §4.4, §4.8)
    assert welcomed.json() == {"sender": {"name": "Acme", "avatar": "https://cdn.acme.example/logo.jpg"},
                               "type": "text", "text": "Hi! Write to us any time.", "tracking_data": "welcome"}
    without = await client.post("/webhooks/viber/viber-bot", content=started, headers=kit.viber_headers(started))
    assert without.json() == {"status": "accepted", "published": 1, "duplicates": 0, "dead_lettered": 0}
    text = kit.body(kit.fixture("viber_callbacks.json")["text"])
    message = await client.post("/webhooks/viber/viber-welcome", content=text, headers=kit.viber_headers(text))
    assert message.json()["status"] == "accepted"  # only conversation_started is answered with the welcome
    events = [e for e in await topics.events(INBOUND_MESSAGES) if e.channel_id == "viber-welcome"]
    assert sorted(e.parts[0].kind for e in events) == ["system", "text"]  # the callback is still published


async def test_secrets_of_the_other_channels_are_checked(client, kit, topics) -> None:
    telegram = kit.body(kit.fixture("telegram_updates.json")["photo"])
    viber = kit.body(kit.fixture("viber_callbacks.json")["text"])
    refused = [
        await client.post("/webhooks/telegram/tg-bot", content=telegram, headers=kit.telegram_headers("guess")),
        await client.post("/webhooks/viber/viber-bot", content=viber, headers=kit.viber_headers(viber, "guess")),
        await client.post("/webhooks/email/mail", content=kit.eml("email_html_only.eml"),
                          headers=kit.email_headers("guess")),
        await client.post("/webhooks/messenger/fb-page", content=viber, headers=kit.meta_headers(viber, "guess")),
    ]
    assert [(r.status_code, r.json()["error"]["code"]) for r in refused] == [(401, "invalid_signature")] * 4
    assert await topics.records(INBOUND_MESSAGES) == []


async def test_an_email_attachment_over_a_megabyte_reaches_the_attachments_topic(client, kit, topics) -> None:
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"], mail["Message-ID"] = "a@b.example", "support@acme.example", "<scan-1@b.example>"
    mail.set_content("the scan is attached")
    scan = bytes(range(256)) * 8192  # 2 MiB: over the producer's 1 MB default request size
    mail.add_attachment(scan, maintype="application", subtype="pdf", filename="scan.pdf")
    response = await client.post("/webhooks/email/mail", content=bytes(mail), headers=kit.email_headers())
    assert response.status_code == 200, response.text
    [attachment] = await topics.events(INBOUND_ATTACHMENTS)
    assert base64.b64decode(attachment.content_base64) == scan and attachment.file_name == "scan.pdf"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def test_the_same_process_recovers_when_kafka_comes_back(kafka_topics, redis: Redis, kit, topics) -> None:
    """Kafka's bootstrap address is closed at start (503), then opens (a TCP relay to the real broker)."""
    port = closed_port()
    real_host, real_port = kafka_topics.kafka_bootstrap.rsplit(":", 1)
    later = kafka_topics.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    app = create_app(IngestSettings(infra=later, publish_timeout_seconds=3), channels=kit.channels)
    body = kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")["document"]]))

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(real_host, int(real_port))
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest"
    ) as http:
        down = await http.post(WA, content=body, headers=kit.meta_headers(body))
        assert down.status_code == 503
        server = await asyncio.start_server(relay, "127.0.0.1", port)
        try:
            await asyncio.sleep(1.2)  # the link retries a failed connect at most once a second
            up = await asyncio.wait_for(http.post(WA, content=body, headers=kit.meta_headers(body)), 15)
            assert (up.status_code, up.json()["published"]) == (200, 1)
        finally:
            server.close()
    assert [e.provider_message_id for e in await topics.events(INBOUND_MESSAGES)] == ["wamid.EXAMPLEdoc01"]
