"""Whatever an authentic provider sends, a normaliser either refuses the whole body as malformed (400) or
returns events and per-item rejections (dead letters): it never raises anything else (no 500, nothing lost)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley_common.events.common import ChannelType
from parley_ingest.domain.model import MalformedPayload
from parley_ingest.domain.providers import PLUGINS

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
keys = st.sampled_from(["id", "from", "timestamp", "type", "text", "image", "message", "sender", "recipient",
                        "mid", "chat", "date", "message_id", "event", "user", "user_id", "message_token",
                        "statuses", "messages", "status", "delivery", "read", "photo", "callback_query"])
provider_items = st.dictionaries(keys, json_values, max_size=6)

CHANNELS = {ChannelType.WHATSAPP: "wa-main", ChannelType.MESSENGER: "fb-page", ChannelType.TELEGRAM: "tg-bot",
            ChannelType.VIBER: "viber-bot"}


def wrap(channel_type: ChannelType, item: dict) -> dict:
    if channel_type == ChannelType.WHATSAPP:
        value = {"metadata": {"phone_number_id": "200000000000002"}, "messages": [item], "statuses": [item]}
        return {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": value}]}]}
    if channel_type == ChannelType.MESSENGER:
        return {"object": "page", "entry": [{"messaging": [item]}]}
    if channel_type == ChannelType.TELEGRAM:
        return {"update_id": 1, **item}
    return {"event": "message", **item}


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(channel_type=st.sampled_from(list(CHANNELS)), item=provider_items)
def test_random_items_become_events_or_dead_letters(kit, channel_type: ChannelType, item: dict) -> None:
    channel_id = CHANNELS[channel_type]
    body = json.dumps(wrap(channel_type, item)).encode()
    try:
        batch = PLUGINS[channel_type].normalise(kit.channels.get(channel_id), body, kit.context(channel_type,
                                                                                                channel_id))
    except MalformedPayload:
        return
    for rejected in batch.rejected:
        assert rejected.reason and rejected.raw
    for normalised in batch.events:
        assert normalised.event.tenant_id == "acme" and normalised.dedup_id


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400) | st.text(max_size=300).map(lambda t: f"From: a@b.example\n{t}".encode()))
def test_random_bytes_as_email_become_a_message_or_a_400(kit, raw: bytes) -> None:
    try:
        batch = PLUGINS[ChannelType.EMAIL].normalise(kit.channels.get("mail"), raw,
                                                     kit.context(ChannelType.EMAIL, "mail"))
    except MalformedPayload:
        return
    assert batch.events[-1].event.external_user_id
