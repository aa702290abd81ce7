"""The contract every channel adapter keeps: send one message, return the provider's id or raise
ProviderFailure saying whether a retry can help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import Outcome, classify_http


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


class ProviderFailure(Exception):
    def __init__(self, outcome: Outcome, code: str, detail: str | None = None) -> None:
        super().__init__(f"{outcome.reason} ({code})")
        self.outcome = outcome
        self.code = code
        self.detail = detail


class ChannelAdapter(Protocol):
    async def send(self, channel: Any, message: Outgoing) -> SendResult: ...


async def post_json(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                    headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> httpx.Response:
    """POST; a timeout or connection error is a retryable failure like a 5xx."""
    return await _post(client, url, json=body, headers=headers, params=params)


async def post_form(client: httpx.AsyncClient, url: str, data: dict[str, str], files: dict[str, Any],
                    headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> httpx.Response:
    """A multipart upload (fields + files); failures classified like post_json."""
    return await _post(client, url, data=data, files=files, headers=headers, params=params)


async def _post(client: httpx.AsyncClient, url: str, **request: Any) -> httpx.Response:
    try:
        return await client.post(url, **request)
    except httpx.TimeoutException as exc:
        raise ProviderFailure(Outcome(True, "provider_timeout"), "timeout", type(exc).__name__) from None
    except httpx.TransportError as exc:
        raise ProviderFailure(Outcome(True, "provider_unreachable"), "transport", type(exc).__name__) from None


def json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderFailure(classify_http(response.status_code), str(response.status_code),
                              "not a JSON response") from None
    if not isinstance(body, dict):
        raise ProviderFailure(classify_http(response.status_code), str(response.status_code), "unexpected JSON")
    return body


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None

