"""Bounds every input shares: identifiers taken from a path (or a token), times, and request body sizes. Every
service uses these, so a hostile value gets the same 4xx everywhere instead of a 500 deep inside one of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import AwareDatetime, BeforeValidator, StringConstraints
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley_common.errors import error_body

MAX_ID_LENGTH = 128
# No control characters, no `$` (a MongoDB operator), no bidi overrides; 1-128 characters. Logins, tenant,
# channel, team, conversation, contact and media ids, custom field names ("order num"), customers' provider ids
# (phones, e-mail addresses, Viber's base64 ids) all fit.
ID_PATTERN = r"^[^\x00-\x1f\x7f$\u202a-\u202e\u2066-\u2069]{1,128}$"
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
# The same, as a path parameter of a FastAPI route (documented in OpenAPI; a bad value is 422 validation_failed).
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]


def _iso_8601(value: Any) -> Any:
    """Only an ISO 8601 text is a time here: pydantic would also take a number ("0", 1700000000) as seconds since
    1970, which the OpenAPI document (`format: date-time`) says is refused."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("an ISO 8601 date and time is expected")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("an ISO 8601 date and time is expected") from None


# A time with its offset, written in ISO 8601 (`2026-12-05T18:00:00Z`); anything else is 422 validation_failed.
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601)]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised while a body streams in, the moment it passes its limit (FastAPI passes HTTPExceptions through)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body exceeds {max_bytes} bytes")


def limited(receive: Receive, max_bytes: int) -> Receive:
    """`receive` that raises BodyTooLarge once more than `max_bytes` of body arrived: a chunked body (no
    Content-Length) is stopped while it streams, not read whole first."""
    seen = 0

    async def receive_limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise BodyTooLarge(max_bytes)
        return message

    return receive_limited


class BodySizeLimit:
    """Every request body at most `max_bytes`: refused from its Content-Length, or stopped while it streams.
    Paths in `own_limits` check their own (larger) limits: an entry ending in "/" is a prefix, others exact."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES, own_limits: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.own_limits = own_limits

    def _exempt(self, path: str) -> bool:
        return any(path.startswith(entry) if entry.endswith("/") else path == entry for entry in self.own_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited(receive, self.max_bytes), send_tracking)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body("payload_too_large", f"the request body exceeds {self.max_bytes} bytes")
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(scope, receive, send)
