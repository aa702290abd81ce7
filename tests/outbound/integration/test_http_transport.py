"""The provider HTTP client (httpx over aiohttp's pool: adapters/http_transport.py) keeps httpx's behaviour the adapters
rely on: answers with their status, headers and body, and timeouts / refused connections as httpx transport
errors (retryable failures)."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from pydantic import SecretStr

from parley_common.settings import InfraSettings
from parley_outbound.adapters.providers.base import ProviderFailure, post_json
from parley_outbound.app import provider_client
from parley_outbound.settings import OutboundSettings

INFRA = InfraSettings(jwt_secret=SecretStr("transport-test-key-of-32-characters"))


async def serve(reply: bytes | None) -> tuple[asyncio.Server, str]:
    """A raw HTTP server answering every request with `reply`, or never answering (None)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if reply is None:
            await asyncio.sleep(5)
        else:
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_answers_pass_through_and_compressed_bodies_are_decoded() -> None:
    body = gzip.compress(b'{"ok": true}')
    reply = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
             b"Retry-After: 3\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    server, url = await serve(reply)
    async with server, provider_client(OutboundSettings(infra=INFRA, provider_timeout_seconds=5)) as client:
        response = await asyncio.wait_for(client.post(f"{url}/x", json={"a": 1}), 10)
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json() == {"ok": True}


async def test_timeouts_and_refused_connections_are_retryable_failures() -> None:
    server, url = await serve(None)
    async with server, provider_client(OutboundSettings(infra=INFRA, provider_timeout_seconds=0.3)) as client:
        with pytest.raises(ProviderFailure) as timed_out:
            await asyncio.wait_for(post_json(client, f"{url}/slow", {}), 10)
        server.close()
        with pytest.raises(ProviderFailure) as refused:
            await asyncio.wait_for(post_json(client, "http://127.0.0.1:1/x", {}), 10)
    assert timed_out.value.outcome.retry and timed_out.value.code == "timeout"
    assert refused.value.outcome.retry and refused.value.code == "transport"
