"""Downloading an attachment's bytes from the channel that references it: one function per way of fetching,
found by channel type through `ProviderFetcher.routes` (a channel type without a route is refused).

Every download streams into a spooled temporary file (memory up to 1 MB, then disk) and stops as soon as the
channel's inbound size ceiling is passed, so a huge file never sits in memory."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx

from parley_common.channels import (
    AnyChannel,
    InstagramChannel,
    MessengerChannel,
    TelegramChannel,
    ViberChannel,
    WhatsAppChannel,
)
from parley_common.events.common import ChannelType
from parley_common.events.inbound import MediaPart
from parley_media.domain.retry import is_retryable_status

SPOOL_MEMORY = 1024 * 1024


class FetchError(Exception):
    """`retryable` says whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retryable: bool) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


@dataclass
class Downloaded:
    file: BinaryIO
    size: int
    declared_mime: str | None

    def close(self) -> None:
        self.file.close()


Route = Callable[[Any, MediaPart, int], Awaitable[Downloaded]]


class ProviderFetcher:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self.routes: dict[ChannelType, Route] = {
            ChannelType.WHATSAPP: self._whatsapp,
            ChannelType.TELEGRAM: self._telegram,
            ChannelType.MESSENGER: self._signed_url,
            ChannelType.INSTAGRAM: self._signed_url,
            ChannelType.VIBER: self._signed_url,
            ChannelType.EMAIL: self._nothing_to_fetch,  # the bytes travel on the attachments topic
            ChannelType.SANDBOX: self._nothing_to_fetch,  # the fake sends no files
        }

    async def fetch(self, channel: AnyChannel, part: MediaPart, max_bytes: int) -> Downloaded:
        if part.source == "email_attachment":
            raise FetchError("not_downloadable", "email attachments arrive on the attachments topic", False)
        route = self.routes.get(channel.type)
        if route is None:
            raise FetchError("unknown_channel_type", f"no way to fetch media of {channel.type}", False)
        return await route(channel, part, max_bytes)

    async def _signed_url(self, channel: MessengerChannel | InstagramChannel | ViberChannel, part: MediaPart,
                          max_bytes: int) -> Downloaded:
        if part.source != "url":
            raise FetchError("unsupported_source", f"{channel.type} cannot fetch a {part.source} reference", False)
        return await self._download(part.reference, {}, max_bytes)  # signed CDN URLs: no credentials

    async def _nothing_to_fetch(self, channel: AnyChannel, part: MediaPart, max_bytes: int) -> Downloaded:
        raise FetchError("unsupported_source", f"{channel.type} cannot fetch a {part.source} reference", False)

    async def _whatsapp(self, channel: WhatsAppChannel, part: MediaPart, max_bytes: int) -> Downloaded:
        auth = {"Authorization": f"Bearer {channel.access_token.get_secret_value()}"}
        if part.source == "url":
            return await self._download(part.reference, auth, max_bytes)
        # The id stays valid 7 days; the URL it gives only minutes: ask for a fresh URL on every attempt.
        info = await self._json(f"{channel.graph_api_base}/{part.reference}",
                                {"phone_number_id": channel.phone_number_id}, auth)
        url = info.get("url")
        if not isinstance(url, str):
            raise FetchError("provider_response", "the media lookup answered no url", True)
        return await self._download(url, auth, max_bytes)

    async def _telegram(self, channel: TelegramChannel, part: MediaPart, max_bytes: int) -> Downloaded:
        token = channel.bot_token.get_secret_value()
        info = await self._json(f"{channel.api_base}/bot{token}/getFile", {"file_id": part.reference}, {})
        file_path = (info.get("result") or {}).get("file_path")
        if not info.get("ok") or not isinstance(file_path, str):
            raise FetchError("provider_response", "getFile answered no file_path", True)
        return await self._download(f"{channel.api_base}/file/bot{token}/{file_path}", {}, max_bytes)

    async def _json(self, url: str, params: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._client.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise FetchError("network", type(exc).__name__, True) from None
        _raise_for_status(response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise FetchError("provider_response", "the lookup did not answer JSON", True) from None
        return body if isinstance(body, dict) else {}

    async def _download(self, url: str, headers: dict[str, str], max_bytes: int) -> Downloaded:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - handed to the caller
        try:
            size, declared = await self._stream_into(spool, url, headers, max_bytes)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return Downloaded(spool, size, declared)  # type: ignore[arg-type]

    async def _stream_into(self, spool: Any, url: str, headers: dict[str, str],
                           max_bytes: int) -> tuple[int, str | None]:
        size = 0
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                _raise_for_status(response.status_code)
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchError("too_large", f"more than {max_bytes} bytes", False)
                    spool.write(chunk)
                declared = response.headers.get("content-type")
        except httpx.HTTPError as exc:
            raise FetchError("network", type(exc).__name__, True) from None
        return size, declared


def _raise_for_status(status: int) -> None:
    if status < 400:
        return
    raise FetchError(f"http_{status}", f"the provider answered HTTP {status}", is_retryable_status(status))
