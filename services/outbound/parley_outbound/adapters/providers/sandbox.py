"""The sandbox channel's fake provider: a send succeeds at once, then `delivered` and `read` come back to
ingest's webhook in the background, as a real provider's callbacks would (docs/channels.md, Sandbox)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import structlog

from parley_common.channels import SandboxChannel
from parley_common.ids import new_id
from parley_outbound.adapters.providers.base import SendResult
from parley_outbound.domain.outgoing import Outgoing

log = structlog.get_logger(__name__)
CALLBACK_STATUSES = ("delivered", "read")


class SandboxAdapter:
    def __init__(self, client: httpx.AsyncClient, callback_delay_seconds: float = 0.5) -> None:
        self._client = client
        # The pause lets outbound record the send before its status arrives; it also looks like a real phone.
        self._delay = callback_delay_seconds
        self._callbacks: set[asyncio.Task[None]] = set()  # held so the loop does not drop them mid-flight

    async def send(self, channel: SandboxChannel, message: Outgoing) -> SendResult:
        provider_message_id = f"sb-{new_id()}"
        task = asyncio.create_task(self._report(channel, provider_message_id, message.recipient))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)
        return SendResult(provider_message_id)

    async def _report(self, channel: SandboxChannel, provider_message_id: str, recipient: str) -> None:
        url = f"{channel.ingest_base_url.rstrip('/')}/webhooks/sandbox/{channel.id}"
        headers = {"Authorization": f"Bearer {channel.secret.get_secret_value()}"}
        for status in CALLBACK_STATUSES:
            await asyncio.sleep(self._delay)
            body = {"type": "status", "message_id": provider_message_id, "user_id": recipient, "status": status,
                    "timestamp": datetime.now(UTC).isoformat()}
            try:
                response = await self._client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("sandbox_callback_failed", channel_id=channel.id, error=type(exc).__name__)
                return
            if response.status_code >= 300:
                log.warning("sandbox_callback_refused", channel_id=channel.id, status_code=response.status_code)
                return
