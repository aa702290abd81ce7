"""Fetches a customer's profile picture from the platform's URL for the console, which shows it from its own
origin: the agent's browser never contacts the platform (its content policy loads no remote image, and a direct
load would tell the platform the agent's address; Meta's picture URLs also expire). Bounded in time and size;
checked to be an image by its content. Every failure is a PictureUnavailable with a short reason."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from parley_contacts.domain.pictures import MAX_PICTURE_BYTES, image_type

MAX_REDIRECTS = 3


@dataclass(frozen=True)
class Picture:
    content: bytes
    media_type: str


class PictureUnavailable(Exception):
    def __init__(self, reason: str, lasting: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lasting = lasting  # the platform refused it (expired, gone): asking again now will not help


class PictureFetcher:
    def __init__(self, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=True,
                                                   max_redirects=MAX_REDIRECTS)

    async def fetch(self, url: str) -> Picture:
        try:
            async with self._client.stream("GET", url, headers={"Accept": "image/*"}) as response:
                if response.status_code >= 400:
                    raise PictureUnavailable(f"http_{response.status_code}", lasting=response.status_code < 500)
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_PICTURE_BYTES:
                        raise PictureUnavailable("too_large", lasting=True)
        except httpx.TooManyRedirects:
            raise PictureUnavailable("too_many_redirects", lasting=True) from None
        except httpx.HTTPError as error:
            raise PictureUnavailable(f"unreachable: {type(error).__name__}", lasting=False) from None
        media_type = image_type(body[:16])
        if media_type is None:
            raise PictureUnavailable("not_an_image", lasting=True)
        return Picture(body, media_type)

    async def close(self) -> None:
        await self._client.aclose()
