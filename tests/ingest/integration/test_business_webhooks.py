"""WhatsApp business-side webhooks (fixtures/whatsapp_account.json "business"): template status and quality
become TemplateUpdated, account and number health ChannelHealthReported, on parley.channels.updates.v1 — none
goes to the dead-letter topic."""

from __future__ import annotations

from typing import Any

from parley_common.events.channels import ChannelHealthReported, TemplateUpdated
from parley_common.topics import CHANNEL_UPDATES, DEAD_LETTERS

WA = "/webhooks/whatsapp/wa-main"


def business(change: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "100000000000001", "time": 1795940000, "changes": [change]}]}


async def test_template_and_health_updates_are_channel_events(client, kit, topics) -> None:
    fixtures = kit.fixture("whatsapp_account.json")["business"]
    for change in fixtures.values():
        body = kit.body(business(change))
        response = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert response.status_code == 200, response.text
        assert response.json()["published"] == 1
    events = {(e.type, getattr(e, "provider_event", None) or e.kind): e for e in await topics.events(CHANNEL_UPDATES)}
    assert await topics.records(DEAD_LETTERS) == []

    paused = events[("parley.channel.template_updated", "PAUSED")]
    assert isinstance(paused, TemplateUpdated)
    assert (paused.name, paused.language, paused.status, paused.reason) == ("order_update", "en_US", "paused",
                                                                           "LOW_QUALITY")
    assert paused.channel_id == "wa-main" and paused.provider_template_id == "1689000000000001"
    assert events[("parley.channel.template_updated", "REINSTATED")].status == "approved"
    rejected = events[("parley.channel.template_updated", "REJECTED")]
    assert (rejected.status, rejected.reason) == ("rejected", "Adjacent parameters without text.")
    quality = events[("parley.channel.template_updated", "quality_update")]
    assert (quality.status, quality.quality) == (None, "YELLOW")  # a quality change alone changes no status

    phone = events[("parley.channel.health_reported", "phone_number_quality_update")]
    assert isinstance(phone, ChannelHealthReported)
    assert (phone.event, phone.messaging_limit) == ("DOWNGRADE", "TIER_1K")
    account = events[("parley.channel.health_reported", "account_update")]
    assert account.event == "ACCOUNT_VIOLATION" and account.raw["violation_info"] == {"violation_type": "SCAM"}
