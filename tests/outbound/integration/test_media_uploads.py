"""Stored attachments reach the providers as files: fetched from (a fake of) the media service over HTTP,
uploaded with each provider's documented upload call, cached per channel in real Redis, sent by id. Viber keeps
a signed public link (it has no upload), email gets a real MIME part over real SMTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fake_uploads import PUBLIC_MEDIA_HOST
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT
from redis.asyncio import Redis

from parley_common.channels import Channels
from parley_common.settings import InfraSettings
from parley_outbound.adapters.providers.base import ProviderFailure
from parley_outbound.adapters.providers.registry import adapters, provider_media
from parley_outbound.adapters.providers.uploads import UploadCache, Uploaded
from parley_outbound.adapters.ratelimit import RateLimiter
from parley_outbound.domain.outgoing import ButtonCall, HeaderCall, Outgoing, TemplateCall
from parley_outbound.handlers.delivery import Delivery
from parley_outbound.settings import OutboundSettings

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 300 + b"\n%%EOF"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 50


@pytest.fixture
async def delivery(infra_settings: InfraSettings, redis: Redis, fake_provider: FakeProvider
                   ) -> AsyncIterator[Delivery]:
    settings = OutboundSettings(infra=infra_settings, max_attempts=3, backoff_base_seconds=0.01,
                                backoff_cap_seconds=0.05, media_base_url=f"{fake_provider.base_url}/media")
    async with httpx.AsyncClient(timeout=5) as client:
        media = provider_media(settings, client, redis)
        yield Delivery(adapters(client, media), RateLimiter(redis, infra_settings.redis_prefix()), settings,
                       jitter=lambda: 0.5)


def stored(fake: FakeProvider, data: bytes, mime: str, name: str | None) -> str:
    media_id = f"m-{uuid.uuid4().hex[:10]}"
    fake.media.store(TENANT, media_id, data, mime, name)
    return media_id


def unique(fake: FakeProvider, data: bytes, mime: str, name: str) -> tuple[bytes, str]:
    """Bytes no other test uploads (uploads are recorded for the whole session), stored under a new id."""
    data += uuid.uuid4().bytes
    return data, stored(fake, data, mime, name)


def out(recipient: str, media_id: str, kind: str, **fields: Any) -> Outgoing:
    # media_url is what the pipeline passes along: an unsigned internal URL that must never reach a provider
    return Outgoing(message_id="msg-up", recipient=recipient, media_id=media_id, media_kind=kind,
                    media_url=f"http://internal-media/v1/media/{media_id}/content", **fields)


async def send(delivery: Delivery, channels: Channels, channel_id: str, message: Outgoing) -> str:
    channel = channels.get(channel_id)
    assert channel is not None
    return (await asyncio.wait_for(delivery.send(channel, message), 20)).provider_message_id


def uploads_of(fake: FakeProvider, data: bytes) -> list[Any]:
    return [upload for upload in fake.uploads if upload.data == data]


async def test_whatsapp_broadcast_uploads_the_stored_bytes_once_and_sends_by_id(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider) -> None:
    data, media_id = unique(fake_provider, PDF, "application/pdf", "invoice-4471.pdf")
    recipients = [f"4477009020{n:02d}" for n in range(8)]
    await asyncio.gather(*(send(delivery, channels, "wa-main", out(r, media_id, "document", text="Invoice"))
                           for r in recipients))
    [upload] = uploads_of(fake_provider, data)  # one upload for the whole broadcast
    assert upload.endpoint == "whatsapp:1001" and upload.content_type == "application/pdf"
    assert upload.fields == {"messaging_product": "whatsapp", "type": "application/pdf"}
    assert fake_provider.media.downloads[media_id] == 1
    for recipient in recipients:
        document = fake_provider.bodies_for(recipient)[-1]["document"]
        assert fake_provider.uploaded(document["id"]).data == data
        assert document == {"id": document["id"], "filename": "invoice-4471.pdf", "caption": "Invoice"}


async def test_whatsapp_template_with_uploaded_header_image_and_buttons(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider) -> None:
    data, media_id = unique(fake_provider, PNG, "image/png", "banner.png")
    call = TemplateCall("order_ready", "en_US", ("Dana",), HeaderCall("image", from_attachment=True),
                        (ButtonCall(0, "quick_reply", "STOP"), ButtonCall(1, "url", "4471"),
                         ButtonCall(2, "copy_code", "SAVE25")))
    await send(delivery, channels, "wa-main", out("447700902100", media_id, "image", template=call))
    components = fake_provider.bodies_for("447700902100")[-1]["template"]["components"]
    header, body, quick, url, coupon = components
    assert fake_provider.uploaded(header["parameters"][0]["image"]["id"]).data == data
    assert header["type"] == "header" and header["parameters"][0]["type"] == "image"
    assert body == {"type": "body", "parameters": [{"type": "text", "text": "Dana"}]}
    assert quick == {"type": "button", "sub_type": "quick_reply", "index": "0",
                     "parameters": [{"type": "payload", "payload": "STOP"}]}
    assert url["parameters"] == [{"type": "text", "text": "4471"}] and url["index"] == "1"
    assert coupon["parameters"] == [{"type": "coupon_code", "coupon_code": "SAVE25"}]


async def test_messenger_and_instagram_use_the_attachment_upload_api(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider) -> None:
    data, media_id = unique(fake_provider, PNG, "image/png", "label.png")
    await send(delivery, channels, "fb-page", out("psid-up", media_id, "image", text="your label"))
    await send(delivery, channels, "fb-page", out("psid-up2", media_id, "image"))
    await send(delivery, channels, "ig-main", out("igsid-up", media_id, "image"))
    page, instagram = uploads_of(fake_provider, data)  # once per channel, reused within it
    assert page.endpoint == "messenger:2002" and "platform" not in page.fields
    assert json.loads(page.fields["message"]) == {"attachment": {"type": "image", "payload": {"is_reusable": True}}}
    assert instagram.endpoint == "messenger:me" and instagram.fields["platform"] == "instagram"
    text, attachment = fake_provider.bodies_for("psid-up")[-2:]
    assert text["message"]["text"] == "your label"
    payload = attachment["message"]["attachment"]
    assert payload["type"] == "image" and fake_provider.uploaded(payload["payload"]["attachment_id"]).data == data
    again = fake_provider.bodies_for("psid-up2")[-1]["message"]["attachment"]["payload"]
    assert again == payload["payload"]


async def test_telegram_uploads_with_the_first_send_then_reuses_the_file_id(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider) -> None:
    data, media_id = unique(fake_provider, PDF, "application/pdf", "menu.pdf")
    await send(delivery, channels, "tg-bot", out("7100", media_id, "document", text="our menu"))
    await send(delivery, channels, "tg-bot", out("7101", media_id, "document"))
    [upload] = uploads_of(fake_provider, data)
    assert upload.endpoint == "telegram:sendDocument" and upload.filename == "menu.pdf"
    first, second = fake_provider.bodies_for("7100")[-1], fake_provider.bodies_for("7101")[-1]
    assert first == {"chat_id": "7100", "caption": "our menu"}  # multipart fields beside the file
    assert fake_provider.uploaded(second["document"]).data == data  # by file_id, no second upload


async def test_viber_gets_a_signed_public_link_with_name_and_size(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider) -> None:
    media_id = stored(fake_provider, PDF, "application/pdf", "terms.pdf")
    await send(delivery, channels, "viber-bot", out("viber-up=", media_id, "file"))
    body = fake_provider.bodies_for("viber-up=")[-1]
    assert body["type"] == "file" and body["file_name"] == "terms.pdf" and body["size"] == len(PDF)
    assert body["media"].startswith(f"{PUBLIC_MEDIA_HOST}/v1/media/{media_id}/content?") and "signature=" in body[
        "media"]


async def test_email_carries_the_file_as_a_mime_attachment(
        delivery: Delivery, channels: Channels, smtp_server: tuple[Any, int], fake_provider: FakeProvider) -> None:
    handler, _ = smtp_server
    media_id = stored(fake_provider, PDF, "application/pdf", "invoice.pdf")
    await send(delivery, channels, "mail", out("dana@example.com", media_id, "file", text="Invoice attached",
                                              subject="Invoice"))
    mail, _ = handler.messages[-1]
    parts = [part for part in mail.walk() if part.get_filename()]
    assert [(part.get_filename(), part.get_content_type()) for part in parts] == [("invoice.pdf", "application/pdf")]
    assert parts[0].get_payload(decode=True) == PDF
    assert "internal-media" not in mail.as_string()  # no link to our media in the body


async def test_upload_errors_are_classified_like_sends(delivery: Delivery, channels: Channels,
                                                       fake_provider: FakeProvider) -> None:
    media_id = stored(fake_provider, PNG, "image/png", None)
    fake_provider.fail_uploads[:] = [131053]  # media upload error: permanent, nothing sent
    with pytest.raises(ProviderFailure) as raised:
        await send(delivery, channels, "wa-main", out("447700902200", media_id, "image"))
    assert (raised.value.outcome.reason, raised.value.outcome.retry) == ("media_upload_error", False)
    assert fake_provider.bodies_for("447700902200") == []
    fake_provider.fail_uploads[:] = [131000, 130429]  # transient twice, then accepted
    await send(delivery, channels, "wa-main", out("447700902200", media_id, "image"))
    assert fake_provider.bodies_for("447700902200")[-1]["type"] == "image"
    wrong = stored(fake_provider, b"PK\x03\x04 an archive", "application/zip", "x.zip")
    with pytest.raises(ProviderFailure) as raised:  # the fake checks the type as WhatsApp documents it
        await send(delivery, channels, "wa-main", out("447700902201", wrong, "document"))
    assert raised.value.code == "131053" and not raised.value.outcome.retry


async def test_missing_expired_or_oversized_media_fails_for_good(delivery: Delivery, channels: Channels,
                                                                 fake_provider: FakeProvider) -> None:
    with pytest.raises(ProviderFailure) as raised:
        await send(delivery, channels, "wa-main", out("447700902300", "m-never-stored", "image"))
    assert (raised.value.outcome.reason, raised.value.outcome.retry) == ("media_not_found", False)
    gone = stored(fake_provider, PNG, "image/png", None)
    fake_provider.media.expire(TENANT, gone)
    with pytest.raises(ProviderFailure) as raised:
        await send(delivery, channels, "tg-bot", out("7300", gone, "image"))
    assert (raised.value.outcome.reason, raised.value.outcome.retry) == ("media_expired", False)
    huge = stored(fake_provider, b"\x89PNG" + bytes(5 * 1024 * 1024 + 1), "image/png", None)
    before = len(fake_provider.uploads)
    with pytest.raises(ProviderFailure) as raised:  # WhatsApp images stop at 5 MB: never fetched whole
        await send(delivery, channels, "wa-main", out("447700902301", huge, "image"))
    assert raised.value.outcome.reason == "attachment_too_large" and len(fake_provider.uploads) == before


async def test_replicas_share_one_upload_through_redis(infra_settings: InfraSettings, redis: Redis,
                                                       channels: Channels, fake_provider: FakeProvider) -> None:
    data, media_id = unique(fake_provider, PNG, "image/png", "shared.png")
    settings = OutboundSettings(infra=infra_settings, media_base_url=f"{fake_provider.base_url}/media")
    async with httpx.AsyncClient(timeout=5) as one, httpx.AsyncClient(timeout=5) as two:
        replicas = [Delivery(adapters(client, provider_media(settings, client, redis)),
                             RateLimiter(redis, infra_settings.redis_prefix()), settings) for client in (one, two)]
        await asyncio.gather(*(send(replica, channels, "wa-main", out(f"4477009025{n:02d}", media_id, "image"))
                               for n, replica in enumerate(replicas * 3)))
    assert len(uploads_of(fake_provider, data)) == 1  # separate in-process locks: Redis kept it to one


async def test_telegram_uploads_again_when_its_file_id_is_refused(
        delivery: Delivery, channels: Channels, fake_provider: FakeProvider, redis: Redis,
        infra_settings: InfraSettings) -> None:
    data, media_id = unique(fake_provider, PDF, "application/pdf", "menu.pdf")

    async def stale() -> Uploaded:
        return Uploaded("AgAC-forgotten-by-telegram")
    await UploadCache(redis, infra_settings.redis_prefix()).once("tg-bot", media_id, timedelta(minutes=5), stale)
    await send(delivery, channels, "tg-bot", out("7400", media_id, "document"))
    assert len(uploads_of(fake_provider, data)) == 1
    endpoints = [endpoint for endpoint, body in fake_provider.requests if body.get("chat_id") == "7400"]
    assert endpoints == ["telegram:sendDocument", "telegram:sendDocument"]  # refused by id, then uploaded
