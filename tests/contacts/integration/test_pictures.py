"""The profile-picture reader over real HTTP against a fake CDN: an image comes back with its type read from its
content; every failure is a PictureUnavailable with its reason, lasting (the platform refused it) or not."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response
from local_server import serve_asgi

from parley_contacts.adapters.pictures import Picture, PictureFetcher, PictureUnavailable
from parley_contacts.domain.pictures import MAX_PICTURE_BYTES

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def fake_cdn() -> FastAPI:
    app = FastAPI()

    @app.get("/p/{name}")
    async def picture(name: str) -> Response:
        answers = {
            "ok": Response(PNG, media_type="application/octet-stream"),  # the claimed type is not trusted
            "expired": Response(b"URL signature expired", status_code=403),
            "down": Response(status_code=503),
            "huge": Response(b"\xff\xd8\xff" + b"\x00" * MAX_PICTURE_BYTES, media_type="image/jpeg"),
            "svg": Response(b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
                            media_type="image/svg+xml"),
            "moved": RedirectResponse("/p/ok"),
            "loop": RedirectResponse("/p/loop"),
        }
        if name == "slow":
            await asyncio.sleep(2)
        return answers.get(name, Response(PNG))

    return app


async def test_a_picture_is_read_bounded_and_every_failure_has_a_reason() -> None:
    async with serve_asgi(fake_cdn()) as base:
        fetcher = PictureFetcher(timeout=0.5)
        try:
            assert await fetcher.fetch(f"{base}/p/ok") == Picture(PNG, "image/png")
            assert await fetcher.fetch(f"{base}/p/moved") == Picture(PNG, "image/png")
            for name, reason, lasting in (("expired", "http_403", True), ("down", "http_503", False),
                                          ("huge", "too_large", True), ("svg", "not_an_image", True),
                                          ("loop", "too_many_redirects", True),
                                          ("slow", "unreachable: ReadTimeout", False)):
                with pytest.raises(PictureUnavailable) as failure:
                    await fetcher.fetch(f"{base}/p/{name}")
                assert (failure.value.reason, failure.value.lasting) == (reason, lasting), name
        finally:
            await fetcher.close()
