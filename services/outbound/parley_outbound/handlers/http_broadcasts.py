"""/v1/broadcasts: managers and owners create, preview, control and watch broadcasts (docs/outbound.md,
Broadcasts). Agents and integrations get 403: a broadcast reaches many customers at once."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from parley_common.auth import MANAGERS, Principal, require_roles
from parley_common.bounds import Identifier, PathId
from parley_common.errors import documented_errors
from parley_outbound.domain.broadcasts import BroadcastState
from parley_outbound.handlers.broadcast_models import BroadcastModel, PreviewModel
from parley_outbound.handlers.broadcasts_service import BroadcastService

STREAM_EVERY_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
STREAM_MAX_SECONDS = 3600.0  # a screen reconnects (EventSource does) rather than hold a stream for ever
FINAL = (BroadcastState.COMPLETED.value, BroadcastState.CANCELLED.value)
CSV_COLUMNS = ("contact_id", "channel_id", "external_user_id", "message_id", "status", "reason", "detail",
               "sent_at", "delivered_at", "read_at", "replied_at")
CSV_CONTENT = {"description": "text/csv, one line per recipient",
               "content": {"text/csv": {"schema": {"type": "string"}}}}
SSE_CONTENT = {"description": "text/event-stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
DEFINITION_REFUSALS = ("unknown_channel (details.field = channel_id)",
                       "channel_types_differ, template_not_found, template_not_approved, template_variable_missing, "
                       "template_variable_unknown, template_variable_invalid, template_header_media_missing|unexpected|"
                       "invalid, template_header_unsupported, validation_failed")

Manager = Annotated[Principal, Depends(require_roles(*MANAGERS))]
Control = Literal["pause", "resume", "cancel"]


def broadcasts_router(service: BroadcastService) -> APIRouter:
    router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"])
    refusals = documented_errors({422: "; ".join(DEFINITION_REFUSALS)})
    not_found = documented_errors({404: "broadcast_not_found"})

    @router.post("", status_code=201, summary="Create a broadcast (starts at start_at, or now)", responses=refusals)
    async def create(body: BroadcastModel, principal: Manager) -> dict[str, Any]:
        return await service.create(body, principal)

    @router.post("/preview", summary="Audience size, skips by reason, and rendered samples, without sending",
                 responses=refusals)
    async def preview(body: PreviewModel, principal: Manager) -> dict[str, Any]:
        return await service.preview(body, principal)

    @router.get("", summary="The tenant's broadcasts, newest first, with their progress")
    async def list_all(principal: Manager, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
        return [await service.view(doc) for doc in await service.newest(principal.tenant_id, limit)]

    @router.get("/{broadcast_id}", summary="One broadcast with its progress counts", responses=not_found)
    async def get(broadcast_id: PathId, principal: Manager) -> dict[str, Any]:
        return await service.view(await service.get(principal.tenant_id, broadcast_id))

    control_errors = documented_errors({404: "broadcast_not_found", 409: "broadcast_state (details.state)"})

    def control_route(action: Control, summary: str) -> None:
        """One concrete route per action, so a method or path no action has gets the shared 405 / 404."""
        async def control(broadcast_id: PathId, principal: Manager) -> dict[str, Any]:
            return await service.control(principal, broadcast_id, action)

        router.add_api_route(f"/{{broadcast_id}}/{action}", control, methods=["POST"], summary=summary,
                             responses=control_errors, name=f"broadcast_{action}")

    control_route("pause", "Pause a scheduled or running broadcast")
    control_route("resume", "Resume a paused broadcast")
    control_route("cancel", "Cancel a broadcast that has not completed")

    @router.get("/{broadcast_id}/recipients", summary="Recipients by id, with each one's status and reason",
                responses=not_found)
    async def recipients(broadcast_id: PathId, principal: Manager, after: Identifier | None = None,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        doc = await service.get(principal.tenant_id, broadcast_id)
        rows = await service.recipient_rows(doc, after, limit)
        return {"recipients": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

    @router.get("/{broadcast_id}/export", summary="Every recipient as CSV (streamed)", response_class=StreamingResponse,
                responses={200: CSV_CONTENT, **not_found})
    async def export(broadcast_id: PathId, principal: Manager) -> StreamingResponse:
        doc = await service.get(principal.tenant_id, broadcast_id)

        async def lines() -> AsyncIterator[str]:
            yield _csv_line(CSV_COLUMNS)
            async for rows in service.all_rows(doc):
                for row in rows:
                    yield _csv_line(tuple(row[column] for column in CSV_COLUMNS))

        return StreamingResponse(lines(), media_type="text/csv",
                                 headers={"Content-Disposition": f"attachment; filename=broadcast-{doc['_id']}.csv"})

    @router.get("/{broadcast_id}/stream", response_class=StreamingResponse, responses={200: SSE_CONTENT, **not_found},
                summary="Server-sent events: `progress` (data: state and progress counts) whenever they change, "
                        "until the broadcast completes or is cancelled")
    async def stream(broadcast_id: PathId, principal: Manager, request: Request) -> StreamingResponse:
        await service.get(principal.tenant_id, broadcast_id)
        return StreamingResponse(_progress_events(service, principal.tenant_id, broadcast_id, request),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


async def _progress_events(service: BroadcastService, tenant_id: str, broadcast_id: str,
                           request: Request) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = last_sent = loop.time()
    last: str | None = None
    sequence = 0
    while loop.time() - started < STREAM_MAX_SECONDS and not await request.is_disconnected():
        doc = await service.get(tenant_id, broadcast_id)
        data = json.dumps({"state": doc["state"], "progress": await service.progress(doc)})
        if data != last:
            sequence += 1
            last, last_sent = data, loop.time()
            yield f"id: {sequence}\nevent: progress\ndata: {data}\n\n"
        elif loop.time() - last_sent > KEEPALIVE_SECONDS:
            last_sent = loop.time()
            yield ": keepalive\n\n"
        if doc["state"] in FINAL:
            return
        await asyncio.sleep(STREAM_EVERY_SECONDS)


def _csv_line(values: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(value) for value in values])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text  # a spreadsheet must not run it as a formula
