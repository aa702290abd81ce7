"""Webhook subscriptions against a local receiver that fails, times out and recovers: every event arrives, none
before an earlier one of its key, signed so the receiver detects a forged or altered body; a receiver that keeps
failing pauses its subscription (reported on the topic and in the API) until it is resumed; log and replay."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from parley_common.auth import issue_token
from parley_common.topics import CONVERSATIONS_EVENTS, INBOUND_MESSAGES, WEBHOOKS_EVENTS
from parley_hooks.adapters.sender import Sender
from parley_hooks.domain.signing import verify
from parley_hooks.domain.targets import TargetPolicy
from tests.hooks.conftest import (
    HooksHarness,
    Receiver,
    conversation_event,
    customer_message,
    eventually,
    serve_receiver,
)

USERS = ("u1", "u2", "u3", "u4")
STEPS = 5


def misbehaving(event: dict[str, Any], seen: int) -> str:
    """u1's first event fails twice, u2's third times out once, u3's last fails once; then each recovers."""
    data = event["data"]
    step = (data.get("comment") or "").removeprefix("step ")
    if data.get("external_user_id") == "u1" and step == "0" and seen < 2:
        return "fail"
    if data.get("external_user_id") == "u2" and step == "2" and seen < 1:
        return "slow"
    if data.get("external_user_id") == "u3" and step == str(STEPS - 1) and seen < 1:
        return "fail"
    return "ok"


async def subscribe(hooks: HooksHarness, receiver: Receiver, types: list[str]) -> dict[str, Any]:
    created = await hooks.client.post("/v1/subscriptions", headers=hooks.manager,
                                      json={"url": receiver.url, "event_types": types, "description": "crm"})
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    return dict(created.json())


async def read_webhook_events(hooks: HooksHarness, count: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(WEBHOOKS_EVENTS.name(hooks.settings.infra.namespace),
                                bootstrap_servers=hooks.settings.infra.kafka_bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{hooks.settings.infra.namespace}")
    await consumer.start()
    try:
        return [WEBHOOKS_EVENTS.parse((await asyncio.wait_for(consumer.getone(), 20)).value).model_dump(mode="json")
                for _ in range(count)]
    finally:
        await consumer.stop()


async def test_no_event_lost_none_reordered_per_key_and_signed(hooks_app: Any) -> None:
    async with serve_receiver() as receiver, hooks_app() as hooks:
        receiver.behaviour = misbehaving
        subscription = await subscribe(hooks, receiver, ["parley.conversation.changed", "parley.message.received"])
        published: dict[str, list[str]] = {user: [] for user in USERS}
        for step in range(STEPS):
            for user in USERS:
                event = conversation_event(user, step)
                published[user].append(str(event.event_id))
                await hooks.publish(event, CONVERSATIONS_EVENTS)
        other_tenant = conversation_event("u1", 99, tenant="globex", channel="wa-globex")
        await hooks.publish(other_tenant, CONVERSATIONS_EVENTS)
        written = customer_message()
        await hooks.publish(written, INBOUND_MESSAGES)
        everything = {event_id for ids in published.values() for event_id in ids} | {str(written.event_id)}

        await eventually(lambda: ({event["id"] for event in receiver.accepted()} >= everything))

        accepted_ids = [event["id"] for event in receiver.accepted()]
        assert sorted(set(accepted_ids)) == sorted(everything)  # none lost, nothing of another tenant
        for user in USERS:  # per key: accepted in publish order, and nothing sent before its predecessor was taken
            mine = [received for received in receiver.requests if received.event["data"]["external_user_id"] == user
                    and received.event["type"] == "parley.conversation.changed"]
            order = published[user]
            first_accepted = [event_id for event_id in dict.fromkeys(r.event["id"] for r in mine if r.answer == "ok")]
            assert first_accepted == order
            taken: set[str] = set()
            for received in mine:
                position = order.index(received.event["id"])
                assert set(order[:position]) <= taken, f"{user}: step {position} sent before an earlier step"
                if received.answer == "ok":
                    taken.add(received.event["id"])
        assert [r.answer for r in receiver.requests if r.event["id"] == published["u1"][0]] == ["fail", "fail", "ok"]
        assert "slow" in [r.answer for r in receiver.requests if r.event["id"] == published["u2"][2]]

        first = receiver.requests[0]
        assert all(received.signature_valid for received in receiver.requests)
        assert first.headers["content-type"] == "application/cloudevents+json"
        assert first.event["specversion"] == "1.0" and first.event["tenantid"] == "acme"
        now = int(time.time())
        timestamp, signature = first.headers["parley-timestamp"], first.headers["parley-signature"]
        assert verify(receiver.secret, timestamp, first.body, signature, now)
        assert not verify(receiver.secret, timestamp, first.body.replace(b"acme", b"acmf"), signature, now)
        assert not verify("another-secret-of-32-characters-or-more", timestamp, first.body, signature, now)
        assert not verify(receiver.secret, str(int(timestamp) - 3600), first.body, signature, now)

        log = (await hooks.client.get(f"/v1/subscriptions/{subscription['id']}/deliveries?limit=200",
                                      headers=hooks.manager)).json()["items"]
        assert len(log) == len(everything) and {entry["status"] for entry in log} == {"delivered"}
        retried = next(entry for entry in log if entry["event_id"] == published["u1"][0])
        assert retried["attempts"] == 3 and [a["error"] for a in retried["log"]] == ["http_500", "http_500", None]
        timed_out = next(entry for entry in log if entry["event_id"] == published["u2"][2])
        assert timed_out["log"][0]["error"] == "timeout"


async def test_a_failing_receiver_pauses_its_subscription_until_resumed_then_replay(hooks_app: Any) -> None:
    async with serve_receiver() as receiver, hooks_app(pause_after_failures=3) as hooks:
        receiver.behaviour = lambda event, seen: "fail"
        before = conversation_event("u9", -1)
        await hooks.publish(before, CONVERSATIONS_EVENTS)  # happened before the subscription: never delivered
        subscription = await subscribe(hooks, receiver, ["parley.conversation.changed"])
        path = f"/v1/subscriptions/{subscription['id']}"
        events = [conversation_event("u9", step) for step in range(2)]
        for event in events:
            await hooks.publish(event, CONVERSATIONS_EVENTS)

        async def paused() -> dict[str, Any] | None:
            shown = (await hooks.client.get(path, headers=hooks.manager)).json()
            return shown if shown["status"] == "paused" else None

        shown = await eventually(paused)
        assert (shown["paused_reason"], shown["last_error"], shown["pending"]) == ("delivery_failures", "http_500", 2)
        assert {r.event["id"] for r in receiver.requests} == {str(events[0].event_id)}  # the later one waited
        tried = len(receiver.requests)
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == tried  # paused: nothing goes out

        receiver.behaviour = lambda event, seen: "ok"
        resumed = await hooks.client.patch(path, headers=hooks.manager, json={"status": "active"})
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        await eventually(lambda: (len(receiver.accepted()) == 2))
        assert [event["id"] for event in receiver.accepted()] == [str(event.event_id) for event in events]
        reported = await read_webhook_events(hooks, 2)
        assert [(event["type"], event["subscription_id"]) for event in reported] == [
            ("parley.webhook.subscription_paused", subscription["id"]),
            ("parley.webhook.subscription_resumed", subscription["id"])]
        assert reported[0]["failures"] == 3 and reported[0]["pending"] == 2 and reported[1]["actor"] == "sam"

        log = (await hooks.client.get(f"{path}/deliveries", headers=hooks.manager)).json()["items"]
        original = next(entry for entry in log if entry["event_id"] == str(events[0].event_id))
        replay = await hooks.client.post(f"{path}/deliveries/{original['id']}/replay", headers=hooks.manager)
        assert replay.status_code == 202 and replay.json()["replayed"] == 1
        await eventually(lambda: (len(receiver.accepted()) == 3))
        assert receiver.accepted()[-1]["id"] == str(events[0].event_id)  # the same CloudEvent: receivers de-dup
        again = (await hooks.client.get(f"{path}/deliveries/{replay.json()['items'][0]}",
                                        headers=hooks.manager)).json()
        assert again["replay_of"] == original["id"] and again["event"]["id"] == str(events[0].event_id)

        window = {"since": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
                  "until": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
        replayed = await hooks.client.post(f"{path}/replay", headers=hooks.manager, json=window)
        assert replayed.status_code == 202 and replayed.json()["replayed"] == 3
        await eventually(lambda: (len(receiver.accepted()) == 6))

        old_secret, new_secret = receiver.secret, "a-new-secret-of-at-least-32-characters"
        rotated = await hooks.client.patch(path, headers=hooks.manager, json={"secret": new_secret})
        assert rotated.status_code == 200 and "secret" not in rotated.json()
        await hooks.publish(conversation_event("u9", 2), CONVERSATIONS_EVENTS)
        await eventually(lambda: (len(receiver.accepted()) == 7))
        last = receiver.requests[-1]
        stamp, signatures = last.headers["parley-timestamp"], last.headers["parley-signature"]
        assert len(signatures.split(",")) == 2  # the new secret's and, for a while, the previous one's
        assert all(verify(key, stamp, last.body, signatures, int(time.time())) for key in (old_secret, new_secret))
        assert str(before.event_id) not in {received.event["id"] for received in receiver.requests}


async def test_the_api_is_the_tenants_and_managers_and_refuses_bad_targets(hooks_app: Any) -> None:
    async with hooks_app() as hooks:
        body = {"url": "https://crm.example.com/parley", "event_types": ["parley.message.received"]}
        created = await hooks.client.post("/v1/subscriptions", headers=hooks.manager, json=body)
        assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
        path = f"/v1/subscriptions/{created.json()['id']}"
        assert "secret" not in (await hooks.client.get(path, headers=hooks.manager)).json()

        secret = hooks.settings.infra.jwt_secret.get_secret_value()
        globex = {"Authorization": f"Bearer {issue_token(secret, 'globex', 'gil', ['owner'])}"}
        agent = {"Authorization": f"Bearer {issue_token(secret, 'acme', 'alice', ['agent'])}"}
        assert (await hooks.client.get(path, headers=globex)).status_code == 404
        assert (await hooks.client.get("/v1/subscriptions", headers=globex)).json() == {"items": []}
        assert (await hooks.client.get(path, headers=agent)).status_code == 403

        for url, code in (("ftp://crm.example.com/x", "url_scheme_not_allowed"),
                          ("https://user:pw@crm.example.com/x", "url_invalid"),
                          ("https://crm.example.com/" + "x" * 2100, "validation_failed")):
            refused = await hooks.client.post("/v1/subscriptions", headers=hooks.manager, json={**body, "url": url})
            assert (refused.status_code, refused.json()["error"]["code"]) == (422, code)
        unknown = await hooks.client.post("/v1/subscriptions", headers=hooks.manager,
                                          json={**body, "event_types": ["parley.dlq"]})
        assert unknown.status_code == 422 and unknown.json()["error"]["details"]["unknown"] == ["parley.dlq"]

        refused = await hooks.client.patch(path, headers=hooks.manager, json={"url": "ftp://crm.example.com/x"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "url_scheme_not_allowed")
        changed = await hooks.client.patch(path, headers=hooks.manager,
                                           json={"event_types": ["parley.media.stored"], "status": "paused"})
        assert changed.json()["event_types"] == ["parley.media.stored"] and changed.json()["status"] == "paused"
        assert changed.json()["paused_reason"] == "by_request"
        assert (await hooks.client.delete(path, headers=hooks.manager)).status_code == 204
        assert (await hooks.client.get(path, headers=hooks.manager)).status_code == 404


async def test_private_addresses_are_refused_unless_allowed(hooks_app: Any) -> None:
    async with hooks_app(allow_private_targets=False, allow_plain_http=False) as hooks:
        for url, code in (("http://crm.example.com/x", "url_scheme_not_allowed"),
                          ("https://127.0.0.1/x", "address_not_allowed"),
                          ("https://10.0.0.8/x", "address_not_allowed"),
                          ("https://[::ffff:127.0.0.1]/x", "address_not_allowed"),
                          ("https://169.254.169.254/latest/meta-data", "address_not_allowed"),
                          ("https://localhost:8443/x", "address_not_allowed")):
            refused = await hooks.client.post("/v1/subscriptions", headers=hooks.manager,
                                              json={"url": url, "event_types": ["parley.message.received"]})
            assert (refused.status_code, refused.json()["error"]["code"]) == (422, code), url


async def test_a_name_resolving_to_a_private_address_is_not_delivered_to() -> None:
    """Checked at every delivery, on the address connected to: a public-looking name can point inside."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"{name} does not resolve here")
    if any(ipaddress.ip_address(str(address)).is_global for address in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    sender = Sender(TargetPolicy(allow_plain_http=True), timeout_s=2)
    try:
        outcome = await sender.post(f"http://{name}:9/hook", {}, b"{}")
    finally:
        await sender.close()
    assert (outcome.status_code, outcome.error) == (None, "address_not_allowed")
