"""The Graph API profile reader over real HTTP against a fake Graph API: the page token as a bearer header, the
fields per channel, look-ups paced per channel, and every failure a ProfileUnavailable with its reason."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from local_server import serve_asgi

from parley_common.channels import InstagramChannel, MessengerChannel
from parley_contacts.adapters.graph_profiles import GraphProfiles, ProfileUnavailable
from parley_contacts.domain.profiles import Profile


def fake_graph(seen: list[tuple[str, str, str]]) -> FastAPI:
    app = FastAPI()

    @app.get("/v23.0/{user_id}")
    async def profile(user_id: str, request: Request) -> Response:
        seen.append((user_id, request.query_params["fields"], request.headers.get("authorization", "")))
        if user_id == "huge":
            return Response(b'{"name": "' + b"x" * 100_000 + b'"}', media_type="application/json")
        if user_id == "slow":
            await asyncio.sleep(2)
        if user_id == "gone":
            return JSONResponse({"error": {"code": 100}}, status_code=400)
        if user_id == "html":
            return Response(b"<html>oops</html>", media_type="text/html")
        return JSONResponse({"first_name": "Ana", "last_name": "Lima", "profile_pic": "https://cdn.example/a.jpg"})

    return app


def channels(base: str) -> tuple[MessengerChannel, InstagramChannel]:
    common = {"tenant_id": "acme", "app_secret": "s", "verify_token": "v", "graph_api_base": f"{base}/v23.0"}
    return (MessengerChannel(id="fb", page_id="1", page_access_token="fb-token", **common),
            InstagramChannel(id="ig", instagram_account_id="2", page_access_token="ig-token", **common))


async def test_profiles_are_read_with_the_page_token_paced_and_every_failure_has_a_reason() -> None:
    seen: list[tuple[str, str, str]] = []
    async with serve_asgi(fake_graph(seen)) as base:
        messenger, instagram = channels(base)
        graph = GraphProfiles(per_second=10.0, timeout=0.5)
        try:
            assert await graph.fetch(messenger, "psid-1") == Profile("Ana Lima", None, "https://cdn.example/a.jpg")
            await graph.fetch(instagram, "igsid-1")
            assert seen[:2] == [("psid-1", "first_name,last_name,profile_pic", "Bearer fb-token"),
                                ("igsid-1", "name,username,profile_pic", "Bearer ig-token")]
            started = time.monotonic()
            await asyncio.gather(*(graph.fetch(messenger, f"psid-{n}") for n in range(5)))
            assert time.monotonic() - started >= 0.35  # 10 a second on one channel: the fifth waits ~0.4 s
            for user_id, reason in (("gone", "http_400"), ("huge", "answer_too_large"), ("html", "malformed_answer"),
                                    ("slow", "unreachable: ReadTimeout")):
                with pytest.raises(ProfileUnavailable) as failure:
                    await graph.fetch(instagram, user_id)
                assert failure.value.reason == reason
        finally:
            await graph.close()
