"""Signature checks (all channels, during a secret rotation too) and de-duplication keys, with hypothesis."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from parley_common.channels import ChannelConfigError, Channels
from parley_common.events.common import ChannelType
from parley_ingest.domain.dedup import dedup_key
from parley_ingest.domain.providers import PLUGINS
from parley_ingest.domain.signatures import bearer_matches, hex_signature_ok, meta_signature_ok, secret_matches

secrets = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=512)


@given(secret=secrets, body=bodies)
def test_meta_signature_accepts_the_right_hmac(secret: str, body: bytes) -> None:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert meta_signature_ok(secret, body, f"sha256={signature}")
    assert hex_signature_ok(secret, body, signature)


@given(secret=secrets, body=bodies, tampered=st.binary(min_size=1, max_size=8))
def test_any_change_to_the_body_breaks_the_signature(secret: str, body: bytes, tampered: bytes) -> None:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert not meta_signature_ok(secret, body + tampered, f"sha256={signature}")
    assert not hex_signature_ok(secret, body + tampered, signature)


@given(secret=secrets, other=secrets, body=bodies)
def test_another_secret_is_refused(secret: str, other: str, body: bytes) -> None:
    signature = hmac.new(other.encode(), body, hashlib.sha256).hexdigest()
    assert meta_signature_ok(secret, body, f"sha256={signature}") == (secret == other)
    assert secret_matches(secret, other) == (secret == other)


def test_missing_or_malformed_headers_are_refused() -> None:
    signature = hmac.new(b"s", b"{}", hashlib.sha256).hexdigest()
    assert not meta_signature_ok("s", b"{}", None)
    assert not meta_signature_ok("s", b"{}", signature)  # no sha256= prefix
    assert not hex_signature_ok("s", b"{}", "")
    assert not secret_matches("s", None)
    assert bearer_matches("s3cret", "Bearer s3cret") and not bearer_matches("s3cret", "Basic s3cret")
    assert not bearer_matches("s3cret", None)


def test_each_plugin_checks_its_own_header(kit) -> None:
    body = b'{"update_id": 1}'
    assert PLUGINS[ChannelType.TELEGRAM].verify(kit.channels.get("tg-bot"), kit.telegram_headers(), body)
    assert not PLUGINS[ChannelType.TELEGRAM].verify(kit.channels.get("tg-bot"), kit.telegram_headers("x"), body)
    assert PLUGINS[ChannelType.VIBER].verify(kit.channels.get("viber-bot"), kit.viber_headers(body), body)
    assert not PLUGINS[ChannelType.VIBER].verify(kit.channels.get("viber-bot"), kit.meta_headers(body), body)
    assert PLUGINS[ChannelType.WHATSAPP].verify(kit.channels.get("wa-main"), kit.meta_headers(body), body)
    assert not PLUGINS[ChannelType.MESSENGER].verify(kit.channels.get("fb-page"), kit.meta_headers(body, "x"), body)
    assert PLUGINS[ChannelType.EMAIL].verify(kit.channels.get("mail"), kit.email_headers(), body)
    assert not PLUGINS[ChannelType.EMAIL].verify(kit.channels.get("mail"), kit.email_headers("nope"), body)


ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300)
tenants = st.from_regex(r"[a-zA-Z0-9_.-]{1,20}", fullmatch=True)


@given(tenant=tenants, channel=tenants, kind=st.sampled_from(["message", "status", "attachment"]), a=ids, b=ids)
def test_dedup_keys_are_namespaced_bounded_and_distinct(tenant: str, channel: str, kind: str, a: str, b: str) -> None:
    key_a = dedup_key("ns1:", tenant, channel, kind, a)
    assert key_a.startswith(f"ns1:ingest:dedup:{tenant}:{channel}:{kind}:")
    assert len(key_a) < 200
    assert key_a == dedup_key("ns1:", tenant, channel, kind, a)
    assert (key_a == dedup_key("ns1:", tenant, channel, kind, b)) == (a == b)
    assert key_a != dedup_key("ns2:", tenant, channel, kind, a)
    assert key_a != dedup_key("ns1:", tenant + "x", channel, kind, a)


def test_during_a_rotation_every_channel_type_accepts_its_new_and_its_previous_secret(kit) -> None:
    """Each type's verifying secret renamed to NEW with the old value listed in previous_inbound_secrets: webhooks
    signed with either verify; a third value, or the old one once it is no longer listed, does not."""
    body = b'{"update_id": 1}'
    new = "rotated-secret-value"
    rotated = {"wa-main": "app_secret", "fb-page": "app_secret", "ig-shop": "app_secret",
               "tg-bot": "webhook_secret", "viber-bot": "auth_token", "mail": "inbound_secret", "sb": "secret"}
    signed = {"app_secret": lambda secret: kit.meta_headers(body, secret),
              "auth_token": lambda secret: kit.viber_headers(body, secret),
              "webhook_secret": kit.telegram_headers, "inbound_secret": kit.email_headers,
              "secret": lambda secret: {"authorization": f"Bearer {secret}"}}
    for channel_id, field in rotated.items():
        old_channel = kit.channels.get(channel_id)
        old = getattr(old_channel, field).get_secret_value()
        during = old_channel.model_copy(update={field: SecretStr(new), "previous_inbound_secrets": (SecretStr(old),)})
        after = during.model_copy(update={"previous_inbound_secrets": ()})
        headers = signed[field]
        plugin = PLUGINS[old_channel.type]
        assert plugin.verify(during, headers(new), body) and plugin.verify(during, headers(old), body), channel_id
        assert not plugin.verify(during, headers("a-third-value"), body), channel_id
        assert plugin.verify(after, headers(new), body) and not plugin.verify(after, headers(old), body), channel_id


def test_a_channel_lists_at_most_two_previous_secrets() -> None:
    base = {"id": "tg", "tenant_id": "acme", "type": "telegram", "bot_token": "1:A", "webhook_secret": "now"}
    assert Channels.parse({"channels": [{**base, "previous_inbound_secrets": ["a", "b"]}]}).get("tg") is not None
    with pytest.raises(ChannelConfigError, match="previous_inbound_secrets"):
        Channels.parse({"channels": [{**base, "previous_inbound_secrets": ["a", "b", "c"]}]})
