"""A fake of the providers' media endpoints over real HTTP (uvicorn on a free local port).

WhatsApp: GET /wa/{media_id} (bearer) → {"url"}; GET /wa-files/{media_id} (bearer) → bytes.
Telegram: GET /tg/bot{token}/getFile?file_id= → {"ok", "result": {"file_path"}}; GET /tg/file/bot{token}/{path}.
Messenger / Instagram / Viber: GET /cdn/{name} → bytes.
`failures[name] = n` answers 503 for the next n requests of that file; `status[name]` answers that status always."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from local_server import serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

WA_TOKEN = "wa-token"
TG_TOKEN = "123:tg-token"


@dataclass
class FakeProvider:
    files: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base_url: str = ""

    def _bytes(self, name: str, declared: str = "application/octet-stream") -> Response:
        self.requests.append(name)
        if name in self.status:
            return Response(status_code=self.status[name])
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            return Response(status_code=503)
        if name not in self.files:
            return Response(status_code=404)
        return Response(self.files[name], media_type=declared)

    def app(self) -> Starlette:
        async def wa_lookup(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {WA_TOKEN}":
                return JSONResponse({"error": {"code": 190}}, status_code=401)
            media_id = request.path_params["media_id"]
            return JSONResponse({"messaging_product": "whatsapp", "id": media_id, "mime_type": "image/jpeg",
                                 "url": f"{self.base_url}/wa-files/{media_id}?hash=abc"})

        async def wa_file(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {WA_TOKEN}":
                return Response(status_code=401)
            return self._bytes(request.path_params["media_id"], "image/jpeg")

        async def tg_get_file(request: Request) -> Response:
            if request.path_params["token"] != TG_TOKEN:
                return JSONResponse({"ok": False}, status_code=401)
            file_id = request.query_params["file_id"]
            return JSONResponse({"ok": True, "result": {"file_id": file_id, "file_path": f"photos/{file_id}.bin"}})

        async def tg_file(request: Request) -> Response:
            if request.path_params["token"] != TG_TOKEN:
                return Response(status_code=401)
            return self._bytes(request.path_params["path"].removeprefix("photos/").removesuffix(".bin"))

        async def cdn(request: Request) -> Response:
            return self._bytes(request.path_params["name"])

        return Starlette(routes=[
            Route("/wa/{media_id}", wa_lookup), Route("/wa-files/{media_id}", wa_file),
            Route("/tg/bot{token}/getFile", tg_get_file), Route("/tg/file/bot{token}/{path:path}", tg_file),
            Route("/cdn/{name}", cdn),
        ])


@asynccontextmanager
async def serve_fake_provider() -> AsyncIterator[FakeProvider]:
    provider = FakeProvider()
    async with serve_asgi(provider.app()) as base_url:
        provider.base_url = base_url
        yield provider
