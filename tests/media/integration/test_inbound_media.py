"""Inbound attachments over the real broker and database, fetched from a fake provider over real HTTP."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from parley_common.events.inbound import EmailAttachmentReceived
from parley_common.kafka import EventPublisher, make_broker
from parley_common.topics import DEAD_LETTERS, INBOUND_ATTACHMENTS, INBOUND_MESSAGES, MEDIA_EVENTS
from parley_media.domain.model import inbound_media_id
from tests.media.conftest import TEXT, jpeg_of_size, media_part, message, png, read_topic
from tests.media.fake_provider import FakeProvider


async def publish(settings: Any, *events: tuple[Any, Any]) -> None:
    broker = make_broker(settings.kafka_bootstrap, "media-test")
    await broker.connect()
    try:
        publisher = EventPublisher(broker, settings.namespace)
        for event, topic in events:
            await publisher.publish(event, topic)
    finally:
        await broker.stop()


async def test_every_provider_is_fetched_stored_once_and_announced(media_app: Any, provider: FakeProvider,
                                                                    mongo: Any) -> None:
    image = png()
    provider.files.update({"wa1": image, "tg1": jpeg_of_size(20_000), "fb1": image, "vb1": b"%PDF-1.7\n%..\n"})
    parts = {
        "wa-main": (media_part("provider_id", "wa1", "wamid.1.0"), "whatsapp"),
        "tg-bot": (media_part("provider_id", "tg1", "tg.1.0"), "telegram"),
        "fb-page": (media_part("url", f"{provider.base_url}/cdn/fb1", "mid.1.0"), "messenger"),
        "vb-bot": (media_part("url", f"{provider.base_url}/cdn/vb1", "vb.1.0", mime="application/pdf"), "viber"),
    }
    async with media_app() as media:
        await publish(media.settings.infra, *[
            (message((TEXT, part), channel_id=channel, channel_type=kind, message_id=f"m-{channel}"), INBOUND_MESSAGES)
            for channel, (part, kind) in parts.items()])
        stored = await read_topic(media.settings.infra, MEDIA_EVENTS, 4)
        records = {event.channel_id: await media.wait_stored(event.media_id) for event in stored}

    assert {event.type for event in stored} == {"parley.media.stored"}
    assert records["wa-main"]["mime_type"] == "image/png"  # declared image/jpeg; the bytes say png
    assert records["tg-bot"]["mime_type"] == "image/jpeg"
    assert records["vb-bot"]["mime_type"] == "application/pdf"
    wa_event = next(event for event in stored if event.channel_id == "wa-main")
    assert wa_event.media_id == inbound_media_id(media.id_key, "acme", "wa-main", "wamid.1.0")
    assert wa_event.provider_message_id == "m-wa-main" and wa_event.attachment_id == "wamid.1.0"
    assert wa_event.has_thumbnail and wa_event.media_kind == "image"
    assert wa_event.expires_at - records["wa-main"]["received_at"] == timedelta(days=30)
    # WhatsApp and Messenger sent the same bytes: one blob for the tenant, two records using it.
    db = mongo[media.settings.infra.database_name("media")]
    assert records["wa-main"]["blob_key"] == records["fb-page"]["blob_key"]
    assert await db["blobs.files"].count_documents({"_id": records["wa-main"]["blob_key"]}) == 1
    assert await db["blobs"].count_documents({}) == 3


async def test_a_failing_download_retries_with_backoff_then_fails_and_dead_letters(
        media_app: Any, provider: FakeProvider) -> None:
    provider.files.update({"flaky": png(color="blue"), "ok": png(color="green")})
    provider.failures["flaky"] = 2  # two 503s, then the file
    provider.status["gone"] = 503  # never comes back
    async with media_app() as media:
        await publish(media.settings.infra,
                      (message((media_part("provider_id", "gone", "a.0"),), message_id="a"), INBOUND_MESSAGES),
                      (message((media_part("provider_id", "flaky", "b.0"),), message_id="b"), INBOUND_MESSAGES),
                      (message((media_part("provider_id", "ok", "c.0"),), message_id="c"), INBOUND_MESSAGES))
        events = await read_topic(media.settings.infra, MEDIA_EVENTS, 3, within=30)
        letters = await read_topic(media.settings.infra, DEAD_LETTERS, 1)

    by_message = {event.provider_message_id: event for event in events}
    assert by_message["c"].type == "parley.media.stored"  # never waited behind the failing one
    assert by_message["b"].type == "parley.media.stored"
    assert provider.requests.count("flaky") == 3
    failed = by_message["a"]
    assert (failed.type, failed.reason, failed.attempts) == ("parley.media.failed", "http_503", 3)
    assert provider.requests.count("gone") == 3
    assert letters[0].reason == "http_503" and letters[0].service == "media"
    assert b'"media_id"' in base64.b64decode(letters[0].original_value_base64)


async def test_an_executable_declared_as_an_image_is_refused(media_app: Any, provider: FakeProvider) -> None:
    provider.files["evil"] = b"MZ\x90\x00" + b"\x00" * 500
    async with media_app() as media:
        await publish(media.settings.infra, (message((media_part("provider_id", "evil", "e.0"),)), INBOUND_MESSAGES))
        [event] = await read_topic(media.settings.infra, MEDIA_EVENTS, 1)
        record = await media.wait_state(event.media_id, {"failed"})
        response = await media.client.get(f"/v1/media/{event.media_id}", headers=media.auth())
    assert (event.type, event.reason) == ("parley.media.failed", "dangerous_type")
    assert record.get("blob_key") is None
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "failed" and "download_url" not in response.json()


async def test_a_failure_is_announced_again_when_its_message_comes_again(media_app: Any,
                                                                         provider: FakeProvider) -> None:
    """The failure's first announcement may have been lost (a stop after the record was marked failed): the message
    delivered again announces it again, under the same event id, and fetches nothing."""
    provider.files["evil-again"] = b"MZ\x90\x00" + b"\x00" * 500
    again = message((media_part("provider_id", "evil-again", "e.0"),), message_id="evil-again")
    async with media_app() as media:
        await publish(media.settings.infra, (again, INBOUND_MESSAGES))
        [first] = await read_topic(media.settings.infra, MEDIA_EVENTS, 1)
        await media.wait_state(first.media_id, {"failed"})
        await publish(media.settings.infra, (again, INBOUND_MESSAGES))
        events = await read_topic(media.settings.infra, MEDIA_EVENTS, 2)
    assert [(event.type, event.reason, event.event_id) for event in events] == [
        ("parley.media.failed", "dangerous_type", first.event_id)] * 2
    assert provider.requests.count("evil-again") == 1


async def test_email_attachments_arrive_inside_the_cluster_in_either_order(media_app: Any) -> None:
    pdf = b"%PDF-1.4\n" + b"x" * 2000
    part = media_part("email_attachment", "att-1", "<msg@x>.1", mime="application/pdf", file_name="invoice.pdf")
    mail = message((TEXT, part), channel_id="mail", channel_type="email", user="bob@example.org",
                   message_id="<msg@x>")
    attachment = EmailAttachmentReceived(
        occurred_at=mail.received_at, tenant_id="acme", correlation_id="c", channel_id="mail",
        external_user_id="bob@example.org", provider_message_id="<msg@x>", attachment_id="<msg@x>.1",
        file_name="invoice.pdf", declared_mime_type="application/pdf", content_base64=base64.b64encode(pdf).decode())
    async with media_app() as media:
        await publish(media.settings.infra, (mail, INBOUND_MESSAGES), (attachment, INBOUND_ATTACHMENTS))
        [event] = await read_topic(media.settings.infra, MEDIA_EVENTS, 1)
        record = await media.wait_stored(event.media_id)
    assert event.media_id == inbound_media_id(media.id_key, "acme", "mail", "<msg@x>.1")
    assert (record["mime_type"], record["size_bytes"], record["file_name"]) == ("application/pdf", 2009, "invoice.pdf")
