"""An httpx transport that sends over aiohttp's connection pool.

The adapters speak httpx. httpx's own pool (httpcore 1.0) walks every pooled connection, with a readability
syscall each, whenever a request starts or ends: with a hundred provider calls in flight that cost ~9 ms of CPU
per call (measured: 83 calls/s at 64 in flight against a 50 ms fake provider, aiohttp 966/s on the same
machine). Behind this transport the adapters keep their httpx code, timeouts and errors; only the pool changes.
(PyPI's httpx-aiohttp 0.2.0 does the same but reports a refused connection as a connect timeout.)"""

from __future__ import annotations

import ssl

import aiohttp
import certifi
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the running event loop.
        connector = aiohttp.TCPConnector(limit=self._max_connections,
                                         ssl=ssl.create_default_context(cafile=certifi.where()))
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        body = await request.aread()
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            async with session.request(request.method, str(request.url), headers=headers, data=body or None,
                                       allow_redirects=False, timeout=_timeout(request)) as response:
                content = await response.read()
                return httpx.Response(response.status, headers=list(response.raw_headers), content=content,
                                      request=request)  # httpx decodes the body by its content-encoding
        except aiohttp.ClientConnectorError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        except TimeoutError as error:  # aiohttp's timeouts subclass both
            raise httpx.ReadTimeout(str(error) or "timed out", request=request) from error
        except aiohttp.ClientError as error:  # disconnected, malformed answer…: retryable like a 5xx
            raise httpx.RemoteProtocolError(str(error), request=request) from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    limits = request.extensions.get("timeout") or {}
    return aiohttp.ClientTimeout(total=None, connect=limits.get("pool"), sock_connect=limits.get("connect"),
                                 sock_read=limits.get("read"))
