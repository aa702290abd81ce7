"""Every documented payload, posted signed through the app, reaches Kafka as exactly the event the channel's
normaliser makes of it (same stable event id, same content), under the customer's one key (the fixtures'
WhatsApp customer comes by phone and by business-scoped id); and the logs never show texts or phones."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from parley_common.events.common import ChannelType
from parley_common.topics import INBOUND_MESSAGES, INBOUND_STATUSES
from parley_ingest.domain.providers import PLUGINS

VOLATILE = {"occurred_at", "received_at", "correlation_id", "external_user_id"}  # keys: compared on their own
DANA = {"447700900123", "GB.28391746502938475612"}  # one WhatsApp customer: phone and business-scoped id


def requests(kit: Any) -> list[tuple[ChannelType, str, bytes, dict[str, str]]]:
    posts = []
    for message in kit.fixture("whatsapp_messages.json").values():
        body = kit.body(kit.whatsapp([message]))
        posts.append((ChannelType.WHATSAPP, "wa-main", body, kit.meta_headers(body)))
    body = kit.body(kit.whatsapp(statuses=list(kit.fixture("whatsapp_statuses.json").values())))
    posts.append((ChannelType.WHATSAPP, "wa-main", body, kit.meta_headers(body)))
    for name, channel_id, channel_type, webhook_object in (
        ("messenger_events.json", "fb-page", ChannelType.MESSENGER, "page"),
        ("instagram_events.json", "ig-shop", ChannelType.INSTAGRAM, "instagram"),
    ):
        body = kit.body(kit.meta(webhook_object, *kit.fixture(name).values()))
        posts.append((channel_type, channel_id, body, kit.meta_headers(body)))
    for update in kit.fixture("telegram_updates.json").values():
        posts.append((ChannelType.TELEGRAM, "tg-bot", kit.body(update), kit.telegram_headers()))
    for callback in kit.fixture("viber_callbacks.json").values():
        body = kit.body(callback)
        posts.append((ChannelType.VIBER, "viber-bot", body, kit.viber_headers(body)))
    return posts


def comparable(event: Any) -> dict[str, Any]:
    # Events without a provider time (Telegram callbacks) take the receive time, which differs per run.
    untimed = getattr(event, "provider_timestamp", None) == getattr(event, "received_at", False)
    return event.model_dump(mode="json", exclude=VOLATILE | ({"provider_timestamp"} if untimed else set()))


def keyed(events: Any) -> dict[str, str]:
    return {str(event.event_id): event.external_user_id for event in events}


async def test_every_payload_reaches_kafka_exactly_as_normalised(client, kit, topics) -> None:
    expected: dict[str, dict[str, Any]] = {}
    normalised_keys: dict[str, str] = {}
    with capture_logs() as logs:
        for channel_type, channel_id, body, headers in requests(kit):
            response = await client.post(f"/webhooks/{channel_type.value}/{channel_id}", content=body,
                                         headers=headers)
            assert response.status_code == 200, response.text
            batch = PLUGINS[channel_type].normalise(kit.channels.get(channel_id), body,
                                                    kit.context(channel_type, channel_id))
            expected.update({str(n.event.event_id): comparable(n.event) for n in batch.events})
            normalised_keys.update(keyed(n.event for n in batch.events))
    published = [*await topics.events(INBOUND_MESSAGES), *await topics.events(INBOUND_STATUSES)]
    published_keys = keyed(published)
    dana = {published_keys[event_id] for event_id, key in normalised_keys.items() if key in DANA}
    assert len(dana) == 1 and dana <= DANA
    others = {event_id for event_id, key in normalised_keys.items() if key not in DANA}
    assert {event_id: published_keys[event_id] for event_id in others} == {i: normalised_keys[i] for i in others}
    assert {str(event.event_id): comparable(event) for event in published} == expected
    assert len(published) == len(expected) == 68

    assert sum(entry["event"] == "webhook_accepted" for entry in logs) == len(requests(kit))
    logged = repr(logs)
    for secret in ("where is my parcel", "447700900123", "Damaged box", kit.app_secret, kit.telegram_secret):
        assert secret not in logged
    metrics = (await client.get("/metrics")).text
    assert 'parley_ingest_requests_total{channel_type="viber",outcome="accepted"}' in metrics
