"""Every channel type has an entry in every per-channel registry and table; an unknown type is refused.

This is the test that guides adding a channel (docs/channels.md, "Adding a channel"): add the type to
`ChannelType` and each assertion below names the registry still missing it."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import httpx
import pytest

from parley_common import channel_catalogue
from parley_common.channel_catalogue import CATALOGUE, UnknownChannelType, WindowKind, attachment_rule
from parley_common.channels import AnyChannel
from parley_common.events.common import ChannelType, SenderKind
from parley_ingest.domain.providers import PLUGINS
from parley_media.adapters.providers import ProviderFetcher
from parley_media.domain.limits import Direction, check, max_size
from parley_outbound.adapters.providers.registry import adapters
from parley_outbound.domain import window
from parley_outbound.domain.window import MessageKind, Reason, SendIntent, Verdict, WindowFacts, decide

ALL = list(ChannelType)


@pytest.mark.parametrize("channel_type", ALL)
def test_the_catalogue_describes_every_channel_type(channel_type: ChannelType) -> None:
    entry = CATALOGUE[channel_type]
    assert entry.type is channel_type
    assert entry.customer_identifiers and entry.send_attachments and entry.receive_max_bytes > 0
    assert entry.send_rate_per_second > 0
    # catch-alls come last, so a listed type is always held to its own kind's size
    catch_alls = [i for i, rule in enumerate(entry.send_attachments) if not rule.mime_types]
    assert all(i >= len(entry.send_attachments) - len(catch_alls) for i in catch_alls)
    if entry.window.kind in (WindowKind.TEMPLATES_OUTSIDE, WindowKind.HUMAN_AGENT_TAG):
        assert entry.window.service_window is not None


@pytest.mark.parametrize("channel_type", ALL)
def test_every_service_registry_has_the_channel_type(channel_type: ChannelType) -> None:
    assert channel_type in PLUGINS, "ingest: domain/providers/__init__.py PLUGINS"
    assert PLUGINS[channel_type].channel_type is channel_type
    with httpx.Client() as client:
        assert channel_type in adapters(typing.cast(typing.Any, client)), "outbound: adapters/providers/registry.py"
    assert channel_type in ProviderFetcher(typing.cast(typing.Any, None)).routes, "media: adapters/providers.py"
    configured = {typing.get_type_hints(model)["type"].__args__[0] for model in typing.get_args(AnyChannel)}
    assert channel_type in configured, "common: channels.py needs a channel configuration model"
    assert max_size(channel_type.value, Direction.INBOUND) > 0 and max_size(channel_type.value, Direction.OUTBOUND) > 0


def test_every_window_kind_has_a_rule() -> None:
    assert set(window.RULES) == set(WindowKind)


def test_an_unknown_channel_type_is_refused_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownChannelType):
        channel_catalogue.facts("line")
    with pytest.raises(UnknownChannelType):
        check("line", Direction.OUTBOUND, "image/png", 10)
    assert attachment_rule(ChannelType.TELEGRAM, "image/png", 10) is not None
    # a type that exists but has no catalogue entry (a half-added channel) may never send
    monkeypatch.setattr(channel_catalogue, "CATALOGUE", {})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    decision = decide(SendIntent(ChannelType.EMAIL, SenderKind.HUMAN, MessageKind.FREE_FORM),
                      WindowFacts(last_customer_at=now), now)
    assert (decision.verdict, decision.reason) == (Verdict.REFUSED, Reason.UNKNOWN_CHANNEL)
