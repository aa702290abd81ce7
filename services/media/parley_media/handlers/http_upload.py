"""POST /v1/media: an agent's (or a bot's) file for sending. The target channel is named in the query so the
size ceiling is checked from Content-Length before the body is read, and again while it streams (a chunked body
has no Content-Length); the multipart body is spooled to disk by the parser (not held in memory), then sniffed
and checked against that channel's outbound limits."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import UploadFile

from parley_common.auth import Principal, Role, require_roles
from parley_common.bounds import BodyTooLarge, limited
from parley_common.channels import Channels
from parley_common.errors import ApiError, documented_errors
from parley_common.ids import new_id
from parley_media.domain import limits
from parley_media.domain.model import MediaState, expires_at
from parley_media.handlers.pipeline import MediaPipeline, Origin, inspect

UPLOADERS = (Role.OWNER, Role.MANAGER, Role.AGENT, Role.INTEGRATION)
MULTIPART_OVERHEAD = 64 * 1024


def upload_router(pipeline: MediaPipeline, channels: Channels) -> APIRouter:
    router = APIRouter(prefix="/v1/media", tags=["media"])

    @router.post("", status_code=201, summary="Upload a file for sending; answers the media id (and announces it "
                                              "with MediaStored, so outbound can send it)",
                 responses=documented_errors({404: "channel_not_found", 413: "too_large",
                                              422: "validation_failed, file_missing, dangerous_type, "
                                                   "type_not_allowed, empty"}))
    async def upload(request: Request, channel_id: Annotated[str, Query(min_length=1)],
                     principal: Annotated[Principal, Depends(require_roles(*UPLOADERS))]) -> dict[str, Any]:
        channel = channels.for_caller(principal.tenant_id, channel_id)
        ceiling = limits.max_size(channel.type.value, limits.Direction.OUTBOUND)
        too_large = ApiError(413, "too_large", f"{channel.type.value} accepts files up to {ceiling} bytes")
        declared_length = request.headers.get("content-length", "")
        if declared_length.isdigit() and int(declared_length) > ceiling + MULTIPART_OVERHEAD:
            raise too_large
        streamed = Request(request.scope, limited(request.receive, ceiling + MULTIPART_OVERHEAD))
        try:
            async with streamed.form(max_files=1, max_fields=4) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise ApiError(422, "file_missing", "send the file in a multipart field named 'file'")
                return await _accept(pipeline, principal, channel.id, channel.type.value, upload)
        except BodyTooLarge:
            raise too_large from None

    return router


async def _accept(pipeline: MediaPipeline, principal: Principal, channel_id: str, channel_type: str,
                  upload: UploadFile) -> dict[str, Any]:
    size = upload.size or 0
    declared = upload.content_type
    seen = await asyncio.to_thread(inspect, upload.file, size, declared, channel_type, limits.Direction.OUTBOUND)
    if not seen.verdict.ok:  # refused before anything is written
        status = 413 if seen.verdict.reason == "too_large" else 422
        raise ApiError(status, seen.verdict.reason or "refused", seen.verdict.detail or "file refused",
                       {"mime_type": seen.mime, "size_bytes": size})
    origin = Origin(
        media_id=f"u_{new_id()}", tenant_id=principal.tenant_id, channel_id=channel_id, channel_type=channel_type,
        direction=limits.Direction.OUTBOUND, received_at=pipeline.clock.now(), correlation_id=new_id(),
        file_name=upload.filename, declared_mime=declared, uploaded_by=principal.login,
    )
    record = await pipeline.open(origin)
    fields = await pipeline.store(origin, upload.file, seen)
    await pipeline.announce_stored({**record, **fields})  # outbound sends only media it was told of
    return {"id": origin.media_id, "state": MediaState.STORED.value, "channel_id": channel_id,
            "file_name": upload.filename, "mime_type": fields["mime_type"], "media_kind": fields["media_kind"],
            "size_bytes": fields["size_bytes"], "sha256": fields["sha256"],
            "expires_at": expires_at(origin.received_at, pipeline.retention_days).isoformat()}
