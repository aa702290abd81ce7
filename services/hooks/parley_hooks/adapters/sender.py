"""One HTTP delivery: resolve the host, refuse internal addresses (unless allowed), connect to the address that
was checked (a name re-resolving to an internal address between check and connect would slip through otherwise),
post, and report the status, never reading more of the answer than its status line and headers."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from parley_hooks.domain.targets import TargetPolicy, TargetRefused, check_address, parse_target


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None  # None: delivered (2xx)
    duration_ms: int


class Sender:
    def __init__(self, policy: TargetPolicy, timeout_s: float) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                                         follow_redirects=False, trust_env=False,
                                         limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Outcome:
        started = time.monotonic()
        try:
            outcome = await asyncio.wait_for(self._post(url, headers, body), self._timeout_s + 1)
        except TargetRefused as refused:
            return Outcome(None, refused.code, _since(started))
        except (httpx.TimeoutException, TimeoutError):
            return Outcome(None, "timeout", _since(started))
        except (httpx.HTTPError, OSError):
            return Outcome(None, "connection_failed", _since(started))
        status = outcome
        return Outcome(status, None if 200 <= status < 300 else f"http_{status}", _since(started))

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        target = parse_target(url, self._policy)
        address = await self._checked_address(target.host, target.port)
        parts = urlsplit(url)
        pinned_host = f"[{address}]" if ":" in address else address
        netloc = f"{pinned_host}:{parts.port}" if parts.port else pinned_host
        request = self._client.build_request(
            "POST", urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), content=body,
            headers={**headers, "Host": parts.netloc}, extensions={"sni_hostname": target.host})
        response = await self._client.send(request, stream=True)
        await response.aclose()  # the answer's body is not ours to read (it could be endless)
        return response.status_code

    async def _checked_address(self, host: str, port: int) -> str:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise OSError(f"{host} has no address")
        for address in addresses:  # every address the name has: any of them could be the one connected to
            check_address(address, self._policy)
        return addresses[0]

    async def close(self) -> None:
        await self._client.aclose()


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
