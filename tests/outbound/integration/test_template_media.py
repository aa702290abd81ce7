"""A WhatsApp template with a media header and button values, end to end: registered over the API, refused at
accept when incomplete, then sent with the stored header image uploaded to (fake) WhatsApp and the button
components built; the timeline text is rendered as for any template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT, manager, post_when_media_known, publisher, read_topic, status_of

from parley_common.events.media import MediaStored
from parley_common.settings import InfraSettings
from parley_common.topics import MEDIA_EVENTS, OUTBOUND_MESSAGES

pytestmark = pytest.mark.asyncio(loop_scope="module")

BANNER = b"\x89PNG\r\n\x1a\n" + bytes(range(200)) * 64
TEMPLATE = {
    "name": "order_ready", "language": "en_US", "category": "utility", "status": "approved",
    "header": {"format": "image"}, "body": "Hi {{1}}, order {{2}} is ready.",
    "buttons": [{"type": "url", "text": "Track", "url": "https://acme.example/t/{{1}}"},
                {"type": "quick_reply", "text": "Stop promotions"}],
}


async def test_template_with_header_image_and_buttons(app: FastAPI, client: httpx.AsyncClient,
                                                      fake_provider: FakeProvider,
                                                      module_infra: InfraSettings) -> None:
    user = "447700904001"
    async with manager(app, module_infra) as boss:
        assert (await boss.put("/v1/templates/wa-main", json=TEMPLATE)).status_code == 200
    fake_provider.media.store(TENANT, "m-banner", BANNER, "image/png", "banner.png")
    now = datetime.now(UTC)
    await publisher(app).publish(MediaStored(
        occurred_at=now, tenant_id=TENANT, correlation_id="c-m", channel_id="wa-main", external_user_id="upload",
        media_id="m-banner", mime_type="image/png", size_bytes=len(BANNER), sha256="0" * 64, media_kind="image",
        expires_at=now + timedelta(days=30)), MEDIA_EVENTS)

    async def send(**content: Any) -> httpx.Response:
        body = {"channel_id": "wa-main", "recipient": {"phone": user}, "content": {
            "kind": "template", "name": "order_ready", "language": "en_US",
            "variables": {"1": "Dana", "2": "4471"}, **content}}
        return await post_when_media_known(client, body)

    no_media = await send(buttons=[{"index": 0, "sub_type": "url", "value": "4471"}])
    assert no_media.status_code == 422 and no_media.json()["error"]["code"] == "template_header_media_missing"
    no_suffix = await send(media_id="m-banner")
    assert no_suffix.json()["error"]["code"] == "template_variable_missing"
    assert no_suffix.json()["error"]["details"]["field"] == "content.buttons.0"

    accepted = await send(media_id="m-banner", buttons=[{"index": 0, "sub_type": "url", "value": "4471"},
                                                        {"index": 1, "sub_type": "quick_reply", "value": "STOP"}])
    assert accepted.status_code == 202, accepted.text
    await status_of(client, accepted.json()["message_id"], "sent")
    header, body, url, quick = fake_provider.bodies_for(user)[-1]["template"]["components"]
    assert fake_provider.uploaded(header["parameters"][0]["image"]["id"]).data == BANNER
    assert body["parameters"] == [{"type": "text", "text": "Dana"}, {"type": "text", "text": "4471"}]
    assert (url["sub_type"], url["index"], url["parameters"]) == ("url", "0", [{"type": "text", "text": "4471"}])
    assert quick["parameters"] == [{"type": "payload", "payload": "STOP"}]
    updates = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: any(e.status.value == "sent"
                                                                               for e in seen),
                               where=lambda event: event.message_id == accepted.json()["message_id"])
    assert updates[-1].rendered_text == "Hi Dana, order 4471 is ready."
    assert updates[-1].content.buttons[0].value == "4471"  # the event carries the parameters (additive fields)
