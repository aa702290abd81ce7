"""Attachment bytes from the media service, fetched inside the cluster so they can be uploaded to a provider.

Media serves bytes through signed links only (docs/media.md): `GET /v1/media/{id}` (bearer, any role) answers
the metadata and a `download_url` signed for a few minutes. Outbound signs itself a short service token for the
message's tenant with the shared JWT secret. The link carries media's *public* base URL; the bytes are read from
the same path and query on the *internal* base URL, so the media service need not be reachable from outside
(only Viber, which takes nothing but a link, needs the public one)."""

from __future__ import annotations

import mimetypes
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any
from urllib.parse import urlsplit

import httpx

from parley_common.auth import issue_token
from parley_outbound.adapters.providers.base import ProviderFailure
from parley_outbound.domain.provider_errors import Outcome

SERVICE_LOGIN = "service.outbound"
IN_MEMORY_BYTES = 1024 * 1024  # larger attachments spill to a temporary file


@dataclass(frozen=True, slots=True)
class MediaInfo:
    media_id: str
    mime_type: str
    file_name: str
    size_bytes: int
    download_url: str  # signed, on media's public base; valid for minutes


@dataclass(slots=True)
class FetchedMedia:
    """The bytes of one attachment, spooled (memory, then disk); valid inside `MediaFetcher.fetch`."""

    info: MediaInfo
    file: IO[bytes]
    size_bytes: int

    def upload(self) -> tuple[str, IO[bytes], str]:
        """The (file name, file, MIME type) triple of an httpx multipart file, from the first byte."""
        self.file.seek(0)
        return self.info.file_name, self.file, self.info.mime_type

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()


def _failure(retry: bool, reason: str, code: str, detail: str | None = None) -> ProviderFailure:
    return ProviderFailure(Outcome(retry, reason), code, detail)


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    code = f"media_{status}"
    if status == 404:
        raise _failure(False, "media_not_found", code, "the media service has no such attachment")
    if status == 410:
        raise _failure(False, "media_expired", code, "the attachment expired and its bytes are deleted")
    if status == 409:
        raise _failure(True, "media_not_ready", code, "the attachment is still being stored")
    if status in (401, 403):
        raise _failure(False, "media_access_denied", code, "outbound may not read the media (secret mismatch?)")
    raise _failure(status == 429 or status >= 500, "media_unavailable", code)


class MediaFetcher:
    def __init__(self, client: httpx.AsyncClient, base_url: str, jwt_secret: str,
                 token_ttl: timedelta = timedelta(minutes=5)) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._secret = jwt_secret
        self._token_ttl = token_ttl

    async def describe(self, tenant_id: str, media_id: str) -> MediaInfo:
        """The attachment's metadata and a freshly signed public download link."""
        token = issue_token(self._secret, tenant_id, SERVICE_LOGIN, ["integration"], ttl=self._token_ttl)
        response = await self._get(f"{self._base}/v1/media/{media_id}", {"Authorization": f"Bearer {token}"})
        _raise_for_status(response)
        body: dict[str, Any] = response.json()
        if not body.get("download_url"):
            raise _failure(True, "media_not_ready", "media_pending", f"the attachment is {body.get('state')}")
        mime = str(body.get("mime_type") or "application/octet-stream")
        name = body.get("file_name") or f"{media_id}{mimetypes.guess_extension(mime) or ''}"
        return MediaInfo(media_id, mime, str(name), int(body.get("size_bytes") or 0), str(body["download_url"]))

    @asynccontextmanager
    async def fetch(self, tenant_id: str, media_id: str, max_bytes: int) -> AsyncIterator[FetchedMedia]:
        """Stream the bytes into a spooled file, refusing more than `max_bytes` (the channel's limit)."""
        info = await self.describe(tenant_id, media_id)
        if info.size_bytes > max_bytes:
            raise _too_large(info.size_bytes, max_bytes)
        with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES) as spool:
            size = await self._download(self.internal_url(info.download_url), spool, max_bytes)
            yield FetchedMedia(info, spool, size)

    def internal_url(self, download_url: str) -> str:
        """The signed link's path and query on the internal base (the signature covers neither host nor port)."""
        parts = urlsplit(download_url)
        return f"{self._base}{parts.path}?{parts.query}"

    async def _download(self, url: str, sink: Any, max_bytes: int) -> int:
        size = 0
        with _network_failures():
            async with self._client.stream("GET", url) as response:
                _raise_for_status(response)
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise _too_large(size, max_bytes)
                    sink.write(chunk)
        return size

    async def _get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        with _network_failures():
            return await self._client.get(url, headers=headers)


@contextmanager
def _network_failures() -> Iterator[None]:
    """A timeout or a refused connection to media is worth a retry, like a provider's 5xx."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _failure(True, "media_unavailable", "media_timeout", type(exc).__name__) from None
    except httpx.TransportError as exc:
        raise _failure(True, "media_unavailable", "media_transport", type(exc).__name__) from None


def _too_large(size: int, max_bytes: int) -> ProviderFailure:
    return _failure(False, "attachment_too_large", "media_too_large",
                    f"{size} bytes is more than the channel's {max_bytes}")
