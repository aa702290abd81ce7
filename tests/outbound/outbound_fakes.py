"""A local fake of the providers' send APIs, speaking their documented request/response shapes and errors
(reference/channels.md §1.9-1.10, §2.4-2.6, §3.6-3.7, §4.6-4.7). Runs uvicorn in a thread on a free port.

The recipient picks the behaviour, so one server serves every test:
  `fail-<code>`        → that provider error every time (WhatsApp/Messenger Graph code, Telegram error_code,
                         Viber status)
  `flaky-<code>-<n>`   → that error for the first n calls to this recipient, then success
  anything else        → success

Uploads (WhatsApp `/{phone}/media`, Messenger `/{page}/message_attachments`, Telegram multipart send*) are
parsed and recorded in `uploads` with their bytes; `fail_uploads` queues Graph error codes for the next uploads.
Sends that name an uploaded id are checked against what was uploaded. `/media/...` is a fake of the media
service's read API (docs/media.md): metadata with a signed link on a public host, and the signed content.
`CollectingHandler` is the SMTP side: an aiosmtpd handler keeping every mail with its envelope recipients.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from aiosmtpd.handlers import Message
from fake_uploads import FakeMedia, Upload, check_upload, graph_error, media_refs, telegram_file_object
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile


class CollectingHandler(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[Any, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((self.prepare_message(session, envelope), list(envelope.rcpt_tos)))
        return "250 OK"

    def handle_message(self, message: Any) -> None:  # pragma: no cover - handle_DATA replaces it
        pass


class FakeProvider:
    def __init__(self, latency_seconds: float = 0.0) -> None:
        self.latency = latency_seconds
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.calls: Counter[str] = Counter()
        self.uploads: list[Upload] = []
        self.fail_uploads: list[int] = []  # Graph error codes answered to the next uploads, in order
        self.media = FakeMedia()
        self._uploaded: dict[str, Upload] = {}  # provider id → what was uploaded under it
        self._ids = itertools.count(1)
        self.app = self._build()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off", backlog=2048)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def bodies_for(self, recipient: str) -> list[dict[str, Any]]:
        return [body for _, body in self.requests if _recipient(body) == recipient]

    def uploaded(self, provider_id: str) -> Upload:
        return self._uploaded[provider_id]

    # --- behaviour -----------------------------------------------------------------------------------
    def _failure(self, recipient: str) -> str | None:
        self.calls[recipient] += 1
        if recipient.startswith("fail-"):
            return recipient.split("-")[1]
        if recipient.startswith("flaky-"):
            _, code, times = recipient.split("-")
            return code if self.calls[recipient] <= int(times) else None
        return None

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/viber/send_message")
        async def viber(request: Request) -> JSONResponse:
            body = await self._receive("viber", request)
            if request.headers.get("x-viber-auth-token") is None:
                return JSONResponse({"status": 2, "status_message": "invalidAuthToken"})
            code = self._failure(body.get("receiver", ""))
            if code is not None:
                return JSONResponse({"status": int(code), "status_message": "error"})
            return JSONResponse({"status": 0, "status_message": "ok", "message_token": 5741311803571720000
                                 + next(self._ids), "chat_hostname": "SN-CHAT-01"})

        @app.post("/telegram/bot{token}/{method}")
        async def telegram(token: str, method: str, request: Request) -> JSONResponse:
            body, files = await self._receive_any(f"telegram:{method}", request)
            code = self._failure(str(body.get("chat_id", "")))
            if code is not None:
                return _telegram_error(int(code))
            result: dict[str, Any] = {"message_id": next(self._ids), "date": int(time.time()),
                                      "chat": {"id": body.get("chat_id"), "type": "private"}}
            field = TELEGRAM_FILE_FIELDS.get(method)
            if field is not None:
                sent = await self._telegram_file(method, field, body.get(field), files.get(field))
                if isinstance(sent, JSONResponse):
                    return sent
                result[field] = sent
            return JSONResponse({"ok": True, "result": result})

        @app.post("/graph/{account}/messages")
        async def graph(account: str, request: Request) -> JSONResponse:
            body = await self._receive(f"graph:{account}", request)
            whatsapp = body.get("messaging_product") == "whatsapp"
            if whatsapp and request.headers.get("authorization") is None:
                return _graph_error(190, 401)
            if not whatsapp and "access_token" not in request.query_params:
                return _graph_error(190, 401)
            code = self._failure(_recipient(body))
            if code is not None:
                status = 429 if code in ("130429", "613") else 400
                return _graph_error(int(code), status, retry_after=code == "130429")
            unknown = [ref for ref in media_refs(body) if ref not in self._uploaded]
            if unknown:  # an id we never handed out: Meta answers a media error
                return _graph_error(131053 if whatsapp else 100, 400)
            number = next(self._ids)
            if whatsapp:
                return JSONResponse({"messaging_product": "whatsapp",
                                     "contacts": [{"input": body["to"], "wa_id": body["to"].lstrip("+")}],
                                     "messages": [{"id": f"wamid.FAKE{number:08d}"}]})
            return JSONResponse({"recipient_id": body["recipient"]["id"], "message_id": f"m_FAKE{number:08d}"})

        @app.post("/graph/{phone_number_id}/media")
        async def whatsapp_upload(phone_number_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") is None:
                return _graph_error(190, 401)
            return await self._upload("whatsapp", phone_number_id, request, "file", "id", 1037000000000000)

        @app.post("/graph/{account}/message_attachments")
        async def messenger_upload(account: str, request: Request) -> JSONResponse:
            if "access_token" not in request.query_params:
                return _graph_error(190, 401)
            return await self._upload("messenger", account, request, "filedata", "attachment_id",
                                      2230000000000000)

        app.include_router(self.media.router(), prefix="/media")

        @app.get("/graph/{waba_id}/message_templates")
        async def templates(waba_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") is None:
                return _graph_error(190, 401)
            if request.query_params.get("after") != "page2":
                return JSONResponse({"data": [TEMPLATES[0]], "paging": {"cursors": {"after": "page2"}, "next":
                                     f"{self.base_url}/graph/{waba_id}/message_templates?after=page2"}})
            return JSONResponse({"data": TEMPLATES[1:], "paging": {"cursors": {"before": "page2"}}})

        return app

    async def _upload(self, provider: str, account: str, request: Request, file_field: str, id_field: str,
                      first_id: int) -> JSONResponse:
        fields, files = await _form(request)
        upload = await _upload_of(f"{provider}:{account}", fields, files.get(file_field))
        problem = self._forced_failure() or check_upload(provider, fields, upload)
        if problem is not None:
            return problem
        return JSONResponse({id_field: self._keep(upload, str(first_id + next(self._ids)))})

    def _forced_failure(self) -> JSONResponse | None:
        if not self.fail_uploads:
            return None
        code = self.fail_uploads.pop(0)
        return graph_error(code, 500 if code in (1, 2, 131000) else 429 if code == 130429 else 400)

    def _keep(self, upload: Upload, provider_id: str) -> str:
        self.uploads.append(upload)
        self._uploaded[provider_id] = upload
        return provider_id

    async def _telegram_file(self, method: str, field: str, given: Any,
                             file: UploadFile | None) -> Any:
        """The sent file's object in the Message; a multipart upload gets new file ids, a file_id must be ours."""
        if file is None:
            if isinstance(given, str) and (given.startswith("http") or given in self._uploaded):
                return telegram_file_object(field, given, self._uploaded.get(given))
            return JSONResponse({"ok": False, "error_code": 400,
                                 "description": "Bad Request: wrong file identifier/HTTP URL specified"}, 400)
        upload = await _upload_of(f"telegram:{method}", {}, file)
        if upload.size > (10 if field == "photo" else 50) * 1024 * 1024:
            return JSONResponse({"ok": False, "error_code": 413, "description": "Request Entity Too Large"}, 413)
        file_id = self._keep(upload, f"AgAC{next(self._ids):012d}")
        return telegram_file_object(field, file_id, upload)

    async def _receive_any(self, endpoint: str, request: Request) -> tuple[dict[str, Any], dict[str, UploadFile]]:
        """A JSON body, or multipart fields and files (Telegram takes both)."""
        if request.headers.get("content-type", "").startswith("multipart/"):
            fields, files = await _form(request)
            self.requests.append((endpoint, dict(fields)))
            return dict(fields), files
        return await self._receive(endpoint, request), {}

    async def _receive(self, endpoint: str, request: Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.requests.append((endpoint, body))
        if self.latency:
            await asyncio.sleep(self.latency)
        return body


TEMPLATES: list[dict[str, Any]] = [
    {"id": "1689000000000001", "name": "order_update", "language": "en_US", "status": "APPROVED",
     "category": "UTILITY", "components": [
         {"type": "HEADER", "format": "TEXT", "text": "Order news"},
         {"type": "BODY", "text": "Hi {{1}}, your order total is {{2}}."},
         {"type": "FOOTER", "text": "Parley demo"},
         {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop promotions"}]}]},
    {"id": "1689000000000002", "name": "winter_promo", "language": "en_US", "status": "REJECTED",
     "category": "MARKETING", "components": [{"type": "BODY", "text": "Sale!"}]},
    {"id": "1689000000000003", "name": "spring_sale", "language": "en_US", "status": "APPROVED",
     "category": "MARKETING", "components": [{"type": "BODY", "text": "Spring sale: 20% off boots"}]},
]


TELEGRAM_FILE_FIELDS = {"sendPhoto": "photo", "sendDocument": "document", "sendVideo": "video",
                        "sendAudio": "audio", "sendSticker": "sticker"}


async def _form(request: Request) -> tuple[dict[str, str], dict[str, UploadFile]]:
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    files = {key: value for key, value in form.items() if isinstance(value, UploadFile)}
    return fields, files


async def _upload_of(endpoint: str, fields: dict[str, str], file: UploadFile | None) -> Upload:
    data = await file.read() if file is not None else b""
    return Upload(endpoint, dict(fields), file.filename if file else None,
                  file.content_type if file else None, data, file is not None)


def _recipient(body: dict[str, Any]) -> str:
    if "to" in body:
        return str(body["to"]).lstrip("+")
    if "recipient" in body:
        return str(body["recipient"]["id"])
    if "receiver" in body:
        return str(body["receiver"])
    return str(body.get("chat_id", ""))


def _graph_error(code: int, status: int, retry_after: bool = False) -> JSONResponse:
    return graph_error(code, status, retry_after=retry_after)


def _telegram_error(code: int) -> JSONResponse:
    descriptions = {403: "Forbidden: bot was blocked by the user", 429: "Too Many Requests: retry after 0",
                    400: "Bad Request: chat not found", 502: "Bad Gateway"}
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": descriptions.get(code, "error")}
    if code == 429:
        body["parameters"] = {"retry_after": 0}
    return JSONResponse(body, status_code=code)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":  # `python outbound_fakes.py PORT LATENCY_SECONDS`: the benchmark's provider process
    import sys

    fake = FakeProvider(latency_seconds=float(sys.argv[2]))
    uvicorn.run(fake.app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                lifespan="off", backlog=4096)
