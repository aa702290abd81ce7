"""The sandbox fake provider: a send returns at once; delivered then read reach ingest's sandbox webhook."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx

from parley_common.channels import SandboxChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import DeliveryStatus
from parley_ingest.domain.model import RequestContext
from parley_ingest.domain.providers import PLUGINS
from parley_outbound.adapters.providers.registry import adapters
from parley_outbound.adapters.providers.sandbox import SandboxAdapter
from parley_outbound.domain.outgoing import Outgoing

CHANNEL = SandboxChannel(id="sb", tenant_id="acme", secret="sb-secret",  # type: ignore[arg-type]
                         ingest_base_url="http://ingest.test/")


async def test_send_returns_at_once_then_delivered_and_read_reach_ingest() -> None:
    received: list[httpx.Request] = []
    both_arrived = asyncio.Event()

    def fake_ingest(request: httpx.Request) -> httpx.Response:
        received.append(request)
        if len(received) == 2:
            both_arrived.set()
        return httpx.Response(200, json={"status": "accepted"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_ingest)) as client:
        adapter = SandboxAdapter(client, callback_delay_seconds=0.01)
        result = await adapter.send(CHANNEL, Outgoing(message_id="m1", recipient="ann", text="Hi"))
        assert result.provider_message_id.startswith("sb-") and received == []  # the send did not wait
        await asyncio.wait_for(both_arrived.wait(), timeout=5)

    plugin = PLUGINS[ChannelType.SANDBOX]
    context = RequestContext("acme", "sb", ChannelType.SANDBOX, "corr", datetime.now(UTC))
    statuses = []
    for request in received:
        assert str(request.url) == "http://ingest.test/webhooks/sandbox/sb"
        assert plugin.verify(CHANNEL, dict(request.headers), request.content)
        [normalised] = plugin.normalise(CHANNEL, request.content, context).events
        assert normalised.event.provider_message_id == result.provider_message_id
        assert normalised.event.external_user_id == "ann"
        statuses.append(normalised.event.status)
    assert statuses == [DeliveryStatus.DELIVERED, DeliveryStatus.READ]
    assert json.loads(received[0].content)["type"] == "status"


async def test_an_unreachable_ingest_does_not_fail_the_send() -> None:
    done = asyncio.Event()

    def down(request: httpx.Request) -> httpx.Response:
        done.set()
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        adapter = SandboxAdapter(client, callback_delay_seconds=0.0)
        result = await adapter.send(CHANNEL, Outgoing(message_id="m2", recipient="ann", text="Hi"))
        await asyncio.wait_for(done.wait(), timeout=5)
        await asyncio.sleep(0.01)
    assert result.provider_message_id.startswith("sb-")


async def test_the_registry_sends_sandbox_channels_through_the_fake() -> None:
    async with httpx.AsyncClient() as client:
        assert isinstance(adapters(client)[ChannelType.SANDBOX], SandboxAdapter)
