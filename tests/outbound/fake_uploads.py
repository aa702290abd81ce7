"""Parts of the fake providers about files: the documented checks of an upload (WhatsApp `POST /{phone}/media`,
reference/channels.md §1.11; Messenger Attachment Upload API, multipart `message` + `filedata`) and a fake of
the media service's read API (docs/media.md: `GET /v1/media/{id}` with a bearer → metadata and a signed
`download_url` on the *public* host; `GET /v1/media/{id}/content?tenant&variant&expires&signature` → bytes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

MB = 1024 * 1024
WHATSAPP_TYPES = {  # MIME → most bytes (§1.11)
    "image/jpeg": 5 * MB, "image/png": 5 * MB, "video/mp4": 16 * MB, "video/3gpp": 16 * MB,
    "audio/aac": 16 * MB, "audio/amr": 16 * MB, "audio/mpeg": 16 * MB, "audio/mp4": 16 * MB, "audio/ogg": 16 * MB,
    "image/webp": 500 * 1024, "text/plain": 100 * MB, "application/pdf": 100 * MB,
    "application/msword": 100 * MB, "application/vnd.ms-excel": 100 * MB,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * MB,
}
MESSENGER_TYPES = {"image": 8 * MB, "audio": 25 * MB, "video": 25 * MB, "file": 25 * MB}
PUBLIC_MEDIA_HOST = "https://media.parley.example"  # what providers would see; never reachable from tests


@dataclass(frozen=True)
class Upload:
    endpoint: str
    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    data: bytes
    has_file: bool = True

    @property
    def size(self) -> int:
        return len(self.data)


def graph_error(code: int, status: int, details: str | None = None, retry_after: bool = False) -> JSONResponse:
    headers = {"Retry-After": "0"} if retry_after else None
    body = {"error": {"message": f"(#{code}) fake error", "type": "OAuthException", "code": code,
                      "error_data": {"messaging_product": "whatsapp", "details": details or f"fake {code}"},
                      "fbtrace_id": "AFakeTrace"}}
    return JSONResponse(body, status_code=status, headers=headers)


def check_upload(provider: str, fields: dict[str, str], upload: Upload) -> JSONResponse | None:
    """The provider's answer to a bad upload, or None when it is acceptable."""
    if not upload.has_file:
        return graph_error(100, 400, "Param file is required")
    if provider == "whatsapp":
        return _check_whatsapp(fields, upload)
    return _check_messenger(fields, upload)


def _check_whatsapp(fields: dict[str, str], upload: Upload) -> JSONResponse | None:
    declared = fields.get("type")
    if fields.get("messaging_product") != "whatsapp" or not declared:
        return graph_error(100, 400, "Params messaging_product and type are required")
    if declared not in WHATSAPP_TYPES or upload.content_type != declared:
        return graph_error(131053, 400, f"Param file must be a file of a supported type, not {upload.content_type}")
    if not upload.data or upload.size > WHATSAPP_TYPES[declared]:
        return graph_error(131053, 400, f"file of {upload.size} bytes is empty or too large for {declared}")
    return None


def _check_messenger(fields: dict[str, str], upload: Upload) -> JSONResponse | None:
    try:
        attachment = json.loads(fields.get("message", ""))["attachment"]
    except (ValueError, KeyError, TypeError):
        return graph_error(100, 400, "Param message must be JSON with an attachment")
    kind = attachment.get("type")
    if kind not in MESSENGER_TYPES or not (attachment.get("payload") or {}).get("is_reusable"):
        return graph_error(100, 400, "attachment type must be image, audio, video or file, and reusable")
    if kind == "image" and not (upload.content_type or "").startswith("image/"):
        return graph_error(100, 400, f"an image attachment cannot be {upload.content_type}")
    if not upload.data or upload.size > MESSENGER_TYPES[kind]:
        return graph_error(100, 400, f"{kind} of {upload.size} bytes is empty or too large")
    return None


def telegram_file_object(field: str, file_id: str, upload: Upload | None) -> Any:
    size = upload.size if upload else 0
    if field == "photo":  # several sizes; the original is last
        return [{"file_id": f"{file_id}-thumb", "file_unique_id": "t", "width": 90, "height": 90, "file_size": 900},
                {"file_id": file_id, "file_unique_id": "o", "width": 800, "height": 600, "file_size": size}]
    return {"file_id": file_id, "file_unique_id": "u", "file_name": upload.filename if upload else None,
            "mime_type": upload.content_type if upload else None, "file_size": size}


def media_refs(body: dict[str, Any]) -> list[str]:
    """Uploaded ids a send refers to: a WhatsApp media object's or a header's `id`, a Messenger
    `attachment_id`."""
    refs = [str(body[kind]["id"]) for kind in ("image", "video", "audio", "document", "sticker")
            if isinstance(body.get(kind), dict) and "id" in body[kind]]
    for component in (body.get("template") or {}).get("components", []):
        for parameter in component.get("parameters", []):
            media = parameter.get(parameter.get("type", ""))
            if isinstance(media, dict) and "id" in media:
                refs.append(str(media["id"]))
    payload = ((body.get("message") or {}).get("attachment") or {}).get("payload") or {}
    if "attachment_id" in payload:
        refs.append(str(payload["attachment_id"]))
    return refs


@dataclass
class StoredMedia:
    data: bytes
    mime_type: str
    file_name: str | None
    expired: bool = False


@dataclass
class FakeMedia:
    items: dict[tuple[str, str], StoredMedia] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)
    secret: bytes = b"fake-media-link-secret"

    def store(self, tenant_id: str, media_id: str, data: bytes, mime_type: str, file_name: str | None = None) -> None:
        self.items[(tenant_id, media_id)] = StoredMedia(data, mime_type, file_name)

    def expire(self, tenant_id: str, media_id: str) -> None:
        self.items[(tenant_id, media_id)].expired = True

    def _signature(self, tenant_id: str, media_id: str, expires: int) -> str:
        payload = f"{tenant_id}|{media_id}|original|{expires}".encode()
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def _find(self, tenant_id: str, media_id: str) -> StoredMedia | JSONResponse:
        item = self.items.get((tenant_id, media_id))
        if item is None:
            return _error(404, "media_not_found")
        return _error(410, "media_expired") if item.expired else item

    def router(self) -> APIRouter:
        router = APIRouter()

        @router.get("/v1/media/{media_id}")
        async def metadata(media_id: str, request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            try:  # the real service verifies the signature too; here only the claims matter
                tenant = jwt.decode(token, options={"verify_signature": False})["tenant"]
            except (jwt.PyJWTError, KeyError):
                return _error(401, "unauthorized")
            item = self._find(tenant, media_id)
            if not isinstance(item, StoredMedia):
                return item
            expires = int(time.time()) + 300
            query = f"tenant={tenant}&variant=original&expires={expires}" \
                    f"&signature={self._signature(tenant, media_id, expires)}"
            return JSONResponse({"id": media_id, "tenant_id": tenant, "mime_type": item.mime_type,
                                 "file_name": item.file_name, "size_bytes": len(item.data), "state": "stored",
                                 "download_url": f"{PUBLIC_MEDIA_HOST}/v1/media/{media_id}/content?{query}"})

        @router.get("/v1/media/{media_id}/content")
        async def content(media_id: str, tenant: str, expires: int, signature: str) -> Response:
            if not hmac.compare_digest(signature, self._signature(tenant, media_id, expires)):
                return _error(403, "invalid_signature")
            item = self._find(tenant, media_id)
            if not isinstance(item, StoredMedia):
                return item
            self.downloads[media_id] += 1
            return Response(item.data, media_type=item.mime_type)

        return router


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": code, "details": {}}}, status_code=status)
