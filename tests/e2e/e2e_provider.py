"""The fake provider of the journeys: the outbound engineer's send-API fake (tests/outbound/outbound_fakes.py,
loaded by path so it keeps its own module name) plus WhatsApp's media endpoints, because one channel has one
`graph_api_base` for sending and for media look-ups.

  GET /graph/{media_id}      (bearer) → {"url": <base>/wa-files/{media_id}}   (WhatsApp media look-up, §1)
  GET /graph/{user_id}?fields=…  (bearer: a page token in `page_tokens`) → the profile in `profiles`, else
                             Graph's error 100 (Messenger / Instagram user profile, §2.6)
  GET /wa-files/{media_id}   (bearer) → the bytes registered in `media_files`
  GET /pictures/{picture_id} (no auth, as a CDN) → a profile picture registered in `pictures` (PNG)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

OUTBOUND_FAKES = Path(__file__).resolve().parents[1] / "outbound" / "outbound_fakes.py"
MODULE_NAME = "parley_e2e_outbound_fakes"


def _outbound_fakes() -> ModuleType:
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    spec = importlib.util.spec_from_file_location(MODULE_NAME, OUTBOUND_FAKES)
    assert spec is not None and spec.loader is not None, f"cannot load {OUTBOUND_FAKES}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    if str(OUTBOUND_FAKES.parent) not in sys.path:  # its helpers (fake_uploads) live beside it
        sys.path.insert(0, str(OUTBOUND_FAKES.parent))
    spec.loader.exec_module(module)
    return module


_fakes = _outbound_fakes()
free_port = _fakes.free_port


class SmtpServer:
    """A local SMTP server (aiosmtpd): `inbox.messages` holds every mail with its envelope recipients."""

    def __init__(self) -> None:
        self.inbox = _fakes.CollectingHandler()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class E2EProvider(_fakes.FakeProvider):  # type: ignore[name-defined]
    """Sends are recorded in `requests` as (endpoint, body) — endpoint `graph:{phone_number_id}` for WhatsApp."""

    def __init__(self, access_token: str) -> None:
        self.access_token = access_token
        self.media_files: dict[str, bytes] = {}
        self.media_requests: list[str] = []
        self.media_gone: set[str] = set()  # media ids whose file answers 410 (a permanent failure)
        self.page_tokens: set[str] = set()
        self.profiles: dict[str, dict[str, Any]] = {}  # user id → the Graph API's profile answer
        self.profile_requests: list[tuple[str, str]] = []  # (user id, fields)
        self.pictures: dict[str, bytes] = {}  # picture id → a profile picture's bytes (the CDN a profile names)
        super().__init__()

    def sends_to(self, phone_digits: str) -> list[dict[str, Any]]:
        return [body for endpoint, body in self.requests
                if endpoint.startswith("graph:") and str(body.get("to", "")).lstrip("+") == phone_digits]

    def _build(self) -> FastAPI:
        app: FastAPI = super()._build()

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {self.access_token}"

        async def profile(user_id: str, request: Request) -> Response:
            self.profile_requests.append((user_id, request.query_params["fields"]))
            if request.headers.get("authorization") not in {f"Bearer {token}" for token in self.page_tokens}:
                return JSONResponse({"error": {"code": 190, "message": "Invalid OAuth access token"}}, status_code=401)
            if user_id not in self.profiles:
                return JSONResponse({"error": {"code": 100, "message": "Unsupported get request"}}, status_code=400)
            return JSONResponse({**self.profiles[user_id], "id": user_id})

        async def media_lookup(media_id: str, request: Request) -> Response:
            if "fields" in request.query_params:  # one path for media and user ids, as on Meta's Graph API
                return await profile(media_id, request)
            self.media_requests.append(f"lookup:{media_id}")
            if not authorised(request):
                return JSONResponse({"error": {"code": 190}}, status_code=401)
            return JSONResponse({"messaging_product": "whatsapp", "id": media_id, "mime_type": "image/png",
                                 "url": f"{self.base_url}/wa-files/{media_id}?hash=e2e"})

        async def media_file(media_id: str, request: Request) -> Response:
            self.media_requests.append(f"file:{media_id}")
            if not authorised(request):
                return Response(status_code=401)
            if media_id in self.media_gone:
                return Response(status_code=410)
            if media_id not in self.media_files:
                return Response(status_code=404)
            return Response(self.media_files[media_id], media_type="image/png")

        async def picture(picture_id: str) -> Response:
            if picture_id not in self.pictures:
                return Response(status_code=404)
            return Response(self.pictures[picture_id], media_type="image/png")

        app.add_api_route("/pictures/{picture_id}", picture, methods=["GET"])
        app.add_api_route("/graph/{media_id}", media_lookup, methods=["GET"])
        app.add_api_route("/wa-files/{media_id}", media_file, methods=["GET"])
        return app
