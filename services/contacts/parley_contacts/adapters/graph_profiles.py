"""Reads a Messenger / Instagram customer's profile from the Graph API of the customer's channel (its
`graph_api_base`, its page token as a bearer header: never in a URL a log could keep). Paced per channel, bounded
in time and size; every failure is a ProfileUnavailable with a short reason, never an exception of httpx's."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import httpx

from parley_common.channels import InstagramChannel, MessengerChannel
from parley_contacts.domain.profiles import PROFILE_FIELDS, Profile, profile_of

MAX_ANSWER_BYTES = 64 * 1024


class ProfileUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GraphProfiles:
    def __init__(self, per_second: float, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self._interval = 1.0 / per_second
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._next: dict[str, float] = {}  # channel id → the monotonic time its next look-up may start
        self._lock = asyncio.Lock()

    async def _turn(self, channel_id: str) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(channel_id, now))
            self._next[channel_id] = start + self._interval
        await asyncio.sleep(start - now)

    async def fetch(self, channel: MessengerChannel | InstagramChannel, user_id: str) -> Profile:
        await self._turn(channel.id)
        url = f"{channel.graph_api_base.rstrip('/')}/{quote(user_id, safe='')}"
        headers = {"Authorization": f"Bearer {channel.page_access_token.get_secret_value()}"}
        try:
            async with self._client.stream("GET", url, params={"fields": PROFILE_FIELDS[channel.type.value]},
                                           headers=headers) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise ProfileUnavailable("answer_too_large")
        except httpx.HTTPError as error:
            raise ProfileUnavailable(f"unreachable: {type(error).__name__}") from None
        if response.status_code != 200:
            raise ProfileUnavailable(f"http_{response.status_code}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise ProfileUnavailable("malformed_answer") from None
        if not isinstance(answer, dict):
            raise ProfileUnavailable("malformed_answer")
        return profile_of(answer)

    async def close(self) -> None:
        await self._client.aclose()
