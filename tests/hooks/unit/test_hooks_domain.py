"""The hooks service's pure policy: where it may deliver, when it tries again or pauses, what it signs and sends."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.events.conversations import ConversationChanged
from parley_hooks.domain.backoff import RetryPolicy
from parley_hooks.domain.events import event_types, structured
from parley_hooks.domain.signing import signature, verify
from parley_hooks.domain.targets import TargetPolicy, TargetRefused, check_address, parse_target
from parley_hooks.metrics import outcome_label

STRICT, LOCAL = TargetPolicy(), TargetPolicy(allow_private=True, allow_plain_http=True)


@pytest.mark.parametrize(("url", "code"), [
    ("http://crm.example.com/in", "url_scheme_not_allowed"),
    ("ftp://crm.example.com/in", "url_scheme_not_allowed"),
    ("https://user:pw@crm.example.com/in", "url_invalid"),
    ("https://crm.example.com/in#part", "url_invalid"),
    ("https://crm example.com/in", "url_invalid"),
    ("https:///in", "url_invalid"),
    ("https://crm.example.com:99999/in", "url_invalid"),
    ("https://-crm.example.com/in", "url_invalid"),
    ("https://localhost/in", "address_not_allowed"),
    ("https://api.localhost/in", "address_not_allowed"),
    ("https://127.0.0.1/in", "address_not_allowed"),
    ("https://10.1.2.3/in", "address_not_allowed"),
    ("https://192.168.0.9/in", "address_not_allowed"),
    ("https://172.16.0.1/in", "address_not_allowed"),
    ("https://100.64.0.1/in", "address_not_allowed"),
    ("https://169.254.169.254/latest", "address_not_allowed"),
    ("https://[::1]/in", "address_not_allowed"),
    ("https://[fd00::1]/in", "address_not_allowed"),
    ("https://[fe80::1]/in", "address_not_allowed"),
    ("https://[::ffff:10.0.0.1]/in", "address_not_allowed"),
    ("https://0.0.0.0/in", "address_not_allowed"),
    ("https://224.0.0.1/in", "address_not_allowed"),
    ("https://crm.example.com/" + "x" * 2048, "url_too_long"),
])
def test_refused_targets(url: str, code: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        parse_target(url, STRICT)
    assert refused.value.code == code


def test_accepted_targets() -> None:
    target = parse_target("https://CRM.example.com:8443/in?tenant=acme", STRICT)
    assert (target.scheme, target.host, target.port) == ("https", "crm.example.com", 8443)
    assert parse_target("https://8.8.8.8/in", STRICT).port == 443
    assert parse_target("http://127.0.0.1:9000/in", LOCAL).host == "127.0.0.1"
    assert parse_target("http://localhost/in", LOCAL).port == 80
    check_address("2001:4860:4860::8888", STRICT)
    with pytest.raises(TargetRefused):
        check_address("fe80::1%eth0", STRICT)


@given(failures=st.integers(min_value=1, max_value=10_000), jitter=st.floats(min_value=0, max_value=1))
def test_back_off_grows_is_bounded_and_jittered(failures: int, jitter: float) -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=600, pause_after_failures=12)
    delay = policy.delay(failures, jitter)
    ceiling = min(600.0, 2.0 * 2 ** (failures - 1)) if failures < 64 else 600.0
    assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(failures, 0) <= policy.delay(failures + 1, 0)


def test_pausing_after_repeated_failures() -> None:
    policy = RetryPolicy(pause_after_failures=3)
    assert [policy.pauses(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@given(body=st.binary(max_size=512), timestamp=st.integers(min_value=0, max_value=2**40))
def test_a_signature_verifies_only_its_body_secret_and_time(body: bytes, timestamp: int) -> None:
    secret = "s" * 32
    signed = signature(secret, timestamp, body)
    assert signed.startswith("v1=") and verify(secret, str(timestamp), body, signed, timestamp + 10)
    assert not verify(secret, str(timestamp), body + b"x", signed, timestamp)
    assert not verify("t" * 32, str(timestamp), body, signed, timestamp)
    assert not verify(secret, str(timestamp), body, signed, timestamp + 301)
    assert not verify(secret, f"-{timestamp}", body, signed, timestamp)


def test_the_documented_receiver_snippet_matches() -> None:
    """docs/webhooks.md's verification, spelled out with the standard library only."""
    import hashlib
    import hmac
    secret, timestamp, body = "whsec_example-secret-of-enough-length", 1767225600, b'{"id":"1"}'
    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature(secret, timestamp, body) == expected


def test_the_catalogue_and_the_structured_cloudevent() -> None:
    types = event_types()
    assert types["parley.message.received"] == "parley.inbound.messages.v1"
    assert types["parley.conversation.changed"] == "parley.conversations.events.v1"
    assert "parley.dead_letter" not in types and "parley.message.send" not in types
    now = datetime(2026, 1, 1, tzinfo=UTC)
    event = ConversationChanged(occurred_at=now, tenant_id="acme", correlation_id="c", channel_id="wa",
                                external_user_id="u", conversation_id="k", change="opened", status="queued",
                                changed_at=now)
    document = json.loads(structured(event))
    assert document["specversion"] == "1.0" and document["id"] == str(event.event_id)
    assert document["type"] == "parley.conversation.changed" and document["source"] == "parley/router"
    assert document["subject"] == "acme|wa|u" and document["datacontenttype"] == "application/json"
    assert ConversationChanged.model_validate(document["data"]) == event


def test_the_documented_event_types_are_the_catalogue() -> None:
    """docs/webhooks.md's "Event types" paragraph lists each type a subscription may ask for (`a.b.c|d` = a.b.c and
    a.b.d): a new event on a public topic is offered at once, so the list goes stale unless this holds."""
    docs = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    paragraph = docs.split("**Event types**", 1)[1].split("\n\n", 1)[0]
    documented = set()
    for written in re.findall(r"`(parley\.[a-z_]+\.[a-z_|]+)`", paragraph):
        stem, _, last = written.rpartition(".")
        documented |= {f"{stem}.{name}" for name in last.split("|")}
    assert documented == set(event_types())


def test_metric_labels_stay_bounded() -> None:
    assert [outcome_label(error) for error in (None, "http_503", "http_404", "timeout", "http_x")] == [
        "delivered", "http_5xx", "http_4xx", "timeout", "http_x"]
