"""GET /v1/media/{id} (metadata and short-lived signed links), the signed content itself (with Range),
and legal hold. Every read filters on the caller's tenant, or on the tenant the signature covers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import ApiError, ErrorEnvelope
from parley_common.ids import ConversationKey
from parley_common.visibility_store import VisibilityProjection
from parley_media.adapters.blobstore import BlobNotFound, BlobStore
from parley_media.adapters.media_repository import MediaRepository
from parley_media.domain.model import MediaState
from parley_media.domain.ranges import ByteRange, Unsatisfiable, parse_range
from parley_media.domain.signing import SignedLink, Variant, sign, verify
from parley_media.handlers.pipeline import thumbnail_key

READERS = (Role.OWNER, Role.MANAGER, Role.AGENT, Role.INTEGRATION)
PUBLIC_FIELDS = ("tenant_id", "channel_id", "channel_type", "direction", "conversation_key", "provider_message_id",
                 "attachment_id", "file_name", "mime_type", "media_kind", "size_bytes", "sha256", "state",
                 "received_at", "stored_at", "expires_at", "expired_at", "legal_hold", "has_thumbnail",
                 "failure_reason", "attempts")


BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}  # the attachment's own type
CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the bytes, with the attachment's type", "content": BYTES},
    206: {"description": "the requested byte range", "content": BYTES},
    403: {"model": ErrorEnvelope, "description": "`error.code`: invalid_signature, signature_expired (the link)"},
    404: {"model": ErrorEnvelope, "description": "`error.code`: media_not_found, thumbnail_not_found, blob_missing"},
    409: {"model": ErrorEnvelope, "description": "`error.code`: media_not_ready"},
    410: {"model": ErrorEnvelope, "description": "`error.code`: media_expired"},
    416: {"description": "the range is outside the content (`Content-Range: bytes */size`)"},
}


class LegalHold(BaseModel):
    hold: bool = Field(strict=True)


class Links:
    """Signs download links with the first of the service's keys and accepts links signed with any of them."""

    def __init__(self, secrets: tuple[bytes, ...], ttl_seconds: int, base_url: str, clock: Any) -> None:
        if not secrets:
            raise ValueError("download links need at least one key")
        self.secrets = secrets
        self.ttl = ttl_seconds
        self.base_url = base_url.rstrip("/")
        self.clock = clock

    def url_for(self, tenant_id: str, media_id: str, variant: Variant) -> tuple[str, int]:
        expires = int(self.clock.now().timestamp()) + self.ttl
        link = sign(self.secrets[0], tenant_id, media_id, variant, expires)
        query = f"tenant={tenant_id}&variant={variant.value}&expires={expires}&signature={link.signature}"
        return f"{self.base_url}/v1/media/{media_id}/content?{query}", expires

    def check(self, link: SignedLink) -> None:
        problem = verify(self.secrets, link, int(self.clock.now().timestamp()))
        if problem is not None:
            raise ApiError(403, problem.value, "the download link is not valid or has expired")


def gone(record: dict[str, Any]) -> ApiError:
    details = {key: record.get(key) for key in ("file_name", "mime_type", "size_bytes")}
    if record.get("expired_at"):
        details["expired_at"] = record["expired_at"].isoformat()
    return ApiError(410, "media_expired", "this attachment has expired and its bytes are deleted", details)


def media_router(repo: MediaRepository, blobs: BlobStore, links: Links, visibility: VisibilityProjection) -> APIRouter:
    router = APIRouter(prefix="/v1/media", tags=["media"])

    @router.get("/{media_id}", summary="Metadata and short-lived signed download links")
    async def get_media(media_id: PathId, principal: Annotated[Principal, Depends(require_roles(*READERS))]
                        ) -> dict[str, Any]:
        record = await repo.get(principal.tenant_id, media_id)
        not_found = ApiError(404, "media_not_found", "no such media")
        if record is None:
            raise not_found
        if record.get("conversation_key"):  # another team's customer's attachment reads as absent
            await visibility.require(principal, [ConversationKey.parse(record["conversation_key"])], not_found)
        if record["state"] in (MediaState.EXPIRED.value, MediaState.EXPIRING.value):
            raise gone(record)
        body = {"id": media_id, **{key: _jsonable(record.get(key)) for key in PUBLIC_FIELDS}}
        if record["state"] == MediaState.STORED.value:
            body["download_url"], expires = links.url_for(principal.tenant_id, media_id, Variant.ORIGINAL)
            body["links_expire_at"] = expires
            if record.get("has_thumbnail"):
                body["thumbnail_url"], _ = links.url_for(principal.tenant_id, media_id, Variant.THUMBNAIL)
        return body

    @router.put("/{media_id}/legal-hold", summary="Keep (or release) an attachment past its retention")
    async def legal_hold(media_id: PathId, hold: LegalHold,
                         principal: Annotated[Principal, Depends(require_roles(*MANAGERS))]) -> dict[str, Any]:
        if not await repo.set_legal_hold(principal.tenant_id, media_id, hold.hold):
            raise ApiError(404, "media_not_found", "no such media")
        return {"id": media_id, "legal_hold": hold.hold}

    @router.get("/{media_id}/content", summary="The bytes, through a signed link (no bearer token); Range aware",
                response_class=StreamingResponse, responses=CONTENT_RESPONSES)
    async def content(media_id: PathId, request: Request, tenant: Annotated[str, Query()],
                      expires: Annotated[int, Query()], signature: Annotated[str, Query()],
                      variant: Annotated[Variant, Query()] = Variant.ORIGINAL) -> Response:
        links.check(SignedLink(tenant, media_id, variant, expires, signature))
        record = await repo.get(tenant, media_id)  # the signed tenant, never a caller-chosen one
        if record is None:
            raise ApiError(404, "media_not_found", "no such media")
        if record["state"] in (MediaState.EXPIRED.value, MediaState.EXPIRING.value):
            raise gone(record)
        if record["state"] != MediaState.STORED.value:
            raise ApiError(409, "media_not_ready", f"the media is {record['state']}")
        if variant is Variant.THUMBNAIL:
            if not record.get("has_thumbnail"):
                raise ApiError(404, "thumbnail_not_found", "this media has no thumbnail")
            return await _whole(blobs, thumbnail_key(record["blob_key"]), "image/jpeg")
        return await _ranged(blobs, record, request.headers.get("range"))

    return router


async def _whole(blobs: BlobStore, key: str, mime: str) -> Response:
    data = b"".join([chunk async for chunk in _read(blobs, key, 0, None)])
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=300"})


async def _ranged(blobs: BlobStore, record: dict[str, Any], range_header: str | None) -> Response:
    size = int(record["size_bytes"])
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300",
               "Content-Disposition": _disposition(record.get("file_name")), "X-Content-Type-Options": "nosniff"}
    try:
        wanted = parse_range(range_header, size)
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    selected = wanted or ByteRange(0, size - 1)
    # Read the first chunk before answering, so a missing blob is a clean error rather than a broken stream.
    stream = _read(blobs, record["blob_key"], selected.start, selected.end)
    first = await anext(stream, b"")
    headers["Content-Length"] = str(selected.length)
    if wanted is not None:
        headers["Content-Range"] = f"bytes {selected.start}-{selected.end}/{size}"

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in stream:
            yield chunk

    return StreamingResponse(body(), status_code=206 if wanted else 200, media_type=record["mime_type"],
                             headers=headers)


async def _read(blobs: BlobStore, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
    try:
        async for chunk in blobs.read(key, start, end):
            yield chunk
    except BlobNotFound:
        raise ApiError(404, "blob_missing", "the stored bytes are missing") from None


def _disposition(file_name: str | None) -> str:
    from urllib.parse import quote

    return f"attachment; filename*=UTF-8''{quote(file_name or 'attachment')}"


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
