"""Signed webhooks through the FastAPI app to the real broker, read back from Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import defaultdict
from typing import Any

import httpx
from redis.asyncio import Redis

from parley_common.events.inbound import DeliveryStatus, MessageReceived
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES, INBOUND_STATUSES

WA = "/webhooks/whatsapp/wa-main"


async def post_meta(client: httpx.AsyncClient, kit: Any, path: str, payload: Any, **headers: str) -> httpx.Response:
    body = kit.body(payload)
    return await client.post(path, content=body, headers={**kit.meta_headers(body), **headers})


async def test_whatsapp_batch_is_published_exactly_with_correlation_id_and_key(client, kit, topics) -> None:
    messages, statuses = kit.fixture("whatsapp_messages.json"), kit.fixture("whatsapp_statuses.json")
    contacts = [{"profile": {"name": "Dana Li"}, "wa_id": "447700900123", "user_id": "GB.28391746502938475612"}]
    payload = kit.whatsapp([messages["text"]], statuses=[statuses["delivered"], statuses["failed"]],
                           contacts=contacts)
    response = await post_meta(client, kit, WA, payload, **{"X-Correlation-Id": "corr-wa-1"})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "published": 3, "duplicates": 0, "dead_lettered": 0}

    [record] = await topics.records(INBOUND_MESSAGES)
    event = INBOUND_MESSAGES.parse(record.value)
    assert record.key == b"acme|wa-main|GB.28391746502938475612"
    assert dict(record.headers)["ce_correlationid"] == b"corr-wa-1"
    assert dict(record.headers)["correlation_id"] == b"corr-wa-1"  # faststream's too: not a uuid4 drawn per record
    assert isinstance(event, MessageReceived) and event.correlation_id == "corr-wa-1"
    assert event.customer.phone_e164 == "+447700900123" and event.raw == messages["text"]
    assert event.parts[0].text == "Hi, where is my parcel?"
    status_events = await topics.events(INBOUND_STATUSES)
    assert sorted((e.provider_message_id, e.status) for e in status_events) == [
        ("wamid.EXAMPLEoutbound0042", DeliveryStatus.DELIVERED), ("wamid.EXAMPLEoutbound0043", DeliveryStatus.FAILED)]
    assert {e.correlation_id for e in status_events} == {"corr-wa-1"}


async def test_one_payload_delivered_five_times_at_once_is_published_once(client, kit, topics) -> None:
    payload = kit.whatsapp([kit.fixture("whatsapp_messages.json")["image"]],
                           statuses=[kit.fixture("whatsapp_statuses.json")["read"]])
    answers = await asyncio.gather(*(post_meta(client, kit, WA, payload) for _ in range(5)))
    assert sorted((a.json()["published"], a.json()["duplicates"]) for a in answers) == [(0, 2)] * 4 + [(2, 0)]
    assert len(await topics.records(INBOUND_MESSAGES)) == 1
    assert len(await topics.records(INBOUND_STATUSES)) == 1


async def test_one_meta_app_url_serves_all_its_numbers(client, kit, topics, redis: Redis) -> None:
    payload = kit.whatsapp([kit.fixture("whatsapp_messages.json")["image"]])
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "200000000000099"
    answers = [(await post_meta(client, kit, WA, payload)).json()["published"] for _ in range(2)]
    assert answers == [1, 0]
    [record] = await topics.records(INBOUND_MESSAGES)
    assert record.key == b"acme|wa-second|447700900123"
    prefix = f"{topics.infra.redis_prefix()}ingest:dedup:acme:wa-second:message:"
    assert len([key async for key in redis.scan_iter(match=prefix + "*")]) == 1


async def test_same_payload_three_times_gives_one_event(client, kit, topics, redis: Redis) -> None:
    payload = kit.whatsapp([kit.fixture("whatsapp_messages.json")["image"]],
                           statuses=[kit.fixture("whatsapp_statuses.json")["read"]])
    answers = [(await post_meta(client, kit, WA, payload)).json() for _ in range(3)]
    assert [(a["published"], a["duplicates"]) for a in answers] == [(2, 0), (0, 2), (0, 2)]
    assert len(await topics.records(INBOUND_MESSAGES)) == 1
    assert len(await topics.records(INBOUND_STATUSES)) == 1
    keys = [key async for key in redis.scan_iter(match=f"{topics.infra.redis_prefix()}ingest:dedup:*")]
    assert len(keys) == 2
    assert all([await redis.ttl(key) >= 7 * 24 * 3600 for key in keys])
    metrics = (await client.get("/metrics")).text
    assert 'parley_ingest_duplicates_dropped_total{channel_type="whatsapp"}' in metrics


async def test_wrong_or_missing_signature_is_refused_and_nothing_published(client, kit, topics) -> None:
    body = kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]]))
    wrong = await client.post(WA, content=body, headers=kit.meta_headers(body, secret="not-the-secret"))
    missing = await client.post(WA, content=body, headers={"content-type": "application/json"})
    tampered = await client.post(WA, content=body + b" ", headers=kit.meta_headers(body))
    for response in (wrong, missing, tampered):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"
    assert await topics.records(INBOUND_MESSAGES) == []
    assert await topics.records(DEAD_LETTERS) == []
    metrics = (await client.get("/metrics")).text
    assert 'parley_ingest_signature_failures_total{channel_type="whatsapp"}' in metrics
    assert 'parley_ingest_requests_total{channel_type="whatsapp",outcome="invalid_signature"}' in metrics


async def test_one_conversations_events_keep_their_order_on_one_partition(client, kit, topics) -> None:
    template = kit.fixture("whatsapp_messages.json")["text"]
    senders = ["447700900123", "447700900456", "447700900789"]
    messages = [dict(template, **{"from": senders[i % 3], "id": f"wamid.ORDER{i:03d}", "from_user_id": None})
                for i in range(30)]
    for start in range(0, 30, 10):  # three POSTs, each a batch of interleaved conversations
        assert (await post_meta(client, kit, WA, kit.whatsapp(messages[start:start + 10]))).status_code == 200
    by_key: dict[bytes, list[tuple[int, int, str]]] = defaultdict(list)
    for record in await topics.records(INBOUND_MESSAGES):
        event = INBOUND_MESSAGES.parse(record.value)
        by_key[record.key].append((record.partition, record.offset, event.provider_message_id))
    assert set(by_key) == {f"acme|wa-main|{sender}".encode() for sender in senders}
    for index, sender in enumerate(senders):
        records = sorted(by_key[f"acme|wa-main|{sender}".encode()], key=lambda r: r[1])
        assert len({partition for partition, _, _ in records}) == 1
        assert [mid for _, _, mid in records] == [f"wamid.ORDER{i:03d}" for i in range(index, 30, 3)]


async def test_a_broken_item_goes_to_the_dlq_and_the_rest_is_stored(client, kit, topics) -> None:
    broken = {"from": "447700900123", "id": "wamid.BROKEN", "type": "text", "text": {"body": "no timestamp"}}
    payload = kit.whatsapp([broken, kit.fixture("whatsapp_messages.json")["text"]])
    response = await post_meta(client, kit, WA, payload)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "published": 1, "duplicates": 0, "dead_lettered": 1}
    [letter] = await topics.events(DEAD_LETTERS)
    assert letter.reason == "normaliser_failed" and letter.service == "ingest" and letter.tenant_id == "acme"
    assert letter.source_topic == "webhooks/whatsapp/wa-main"
    assert json.loads(base64.b64decode(letter.original_value_base64)) == broken
    assert [e.provider_message_id for e in await topics.events(INBOUND_MESSAGES)] == ["wamid.EXAMPLEinbound0001"]


async def test_signed_but_unreadable_body_is_400_and_kept_on_the_dlq(client, kit, topics) -> None:
    body = b'{"object": "whatsapp_business_account", "entry": [ truncated'
    response = await client.post(WA, content=body, headers=kit.meta_headers(body))
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    [letter] = await topics.events(DEAD_LETTERS)
    assert letter.reason == "malformed_json" and base64.b64decode(letter.original_value_base64) == body


async def test_bad_requests_get_clear_codes(client, kit, topics) -> None:
    body = kit.body(kit.whatsapp([kit.fixture("whatsapp_messages.json")["text"]]))
    cases = {
        "/webhooks/whatsapp/nope": (404, "unknown_channel"),
        "/webhooks/telegram/wa-main": (404, "channel_type_mismatch"),
        "/webhooks/sms/wa-main": (404, "unknown_channel_type"),
    }
    for path, (status, code) in cases.items():
        response = await client.post(path, content=body, headers=kit.meta_headers(body))
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    text_plain = {**kit.meta_headers(body), "content-type": "text/plain"}
    response = await client.post(WA, content=body, headers=text_plain)
    assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media_type")
    huge = b" " * (4 * 1024 * 1024 + 1)
    response = await client.post(WA, content=huge, headers=kit.meta_headers(huge))
    assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large")
    assert await topics.records(INBOUND_MESSAGES) == []


async def test_meta_handshake(client, kit) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": kit.verify_token, "hub.challenge": "1158201444"}
    for path in (WA, "/webhooks/messenger/fb-page", "/webhooks/instagram/ig-shop"):
        response = await client.get(path, params=params)
        assert (response.status_code, response.text) == (200, "1158201444")
    wrong = await client.get(WA, params={**params, "hub.verify_token": "guess"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "verify_token_mismatch")
    telegram = await client.get("/webhooks/telegram/tg-bot", params=params)
    assert telegram.status_code == 405


async def test_sandbox_message_is_published_and_a_wrong_bearer_is_refused(client, kit, topics) -> None:
    body = kit.body({"type": "message", "id": "sb-m-1", "user_id": "ann", "name": "Ann", "text": "Hello"})
    path = "/webhooks/sandbox/sb"
    wrong = await client.post(path, content=body, headers={"content-type": "application/json",
                                                           "authorization": "Bearer not-the-secret"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_signature")
    response = await client.post(path, content=body, headers={"content-type": "application/json",
                                                              "authorization": f"Bearer {kit.sandbox_secret}"})
    assert response.json() == {"status": "accepted", "published": 1, "duplicates": 0, "dead_lettered": 0}
    [record] = await topics.records(INBOUND_MESSAGES)
    assert record.key == b"acme|sb|ann"
    assert INBOUND_MESSAGES.parse(record.value).parts[0].text == "Hello"
