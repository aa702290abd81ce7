"""Export of the filtered selection as CSV or JSON Lines, streamed from one database cursor a batch at a time,
with the customer's name, phone and labels from the router's projection of contacts' events."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from parley_common.auth import Principal, Role, require_roles
from parley_common.errors import documented_errors
from parley_router.adapters.directory import contact_summary
from parley_router.domain.conversation import Conversation
from parley_router.handlers.deps import brands_of, engine_of, teams_of
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbox import InboxFilter, conversation_json, filter_query, scope

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]
EXPORT_COLUMNS = ("id", "status", "channel_type", "channel_id", "external_user_id", "contact_id", "customer_name",
                  "customer_phone", "labels", "assignee", "team_id", "priority", "unanswered", "archived", "opened_at",
                  "last_activity_at", "closed_at", "first_response_seconds", "closing_note")
EXPORT_BATCH = 500


EXPORT_CONTENT = {"description": "`format=csv`: text/csv; `format=jsonl`: JSON Lines",
                  "content": {"text/csv": {"schema": {"type": "string"}},
                              "application/x-ndjson": {"schema": {"type": "string"}}}}


@router.get("/export", responses={200: EXPORT_CONTENT, **documented_errors({})}, response_class=StreamingResponse,
            summary="Export the filtered selection as CSV or JSON Lines (streamed)")
async def export(principal: Caller, request: Request, wanted: Annotated[InboxFilter, Query()],
                 format: Literal["csv", "jsonl"] = "jsonl") -> StreamingResponse:
    """Oldest opened first. `contact_id` is the customer's card (a new customer's named as the conversation opened);
    `customer_name`, `customer_phone` and `labels` are the card as the router last heard of it (contacts' events), else
    what the channel told."""
    engine = engine_of(request)
    query = filter_query(scope(principal, await teams_of(engine, principal)), wanted, brands=brands_of(request))

    async def lines() -> AsyncIterator[str]:
        if format == "csv":
            yield _csv_line(EXPORT_COLUMNS)
        async for docs in _rows(engine, principal.tenant_id, query):
            for doc in docs:
                yield json.dumps(doc) + "\n" if format == "jsonl" else _csv_line(_csv_values(doc))

    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(lines(), media_type=media,
                             headers={"Content-Disposition": f"attachment; filename=conversations.{format}"})


async def _rows(engine: Engine, tenant_id: str, query: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    async for batch in engine.stores.conversations.stream(query, [("opened_at", 1), ("_id", 1)], EXPORT_BATCH):
        cards = await engine.stores.directory.cards(tenant_id, {conv.contact_id for conv in batch if conv.contact_id})
        yield [_with_card(conv, cards.get(conv.contact_id or "")) for conv in batch]


def _with_card(conv: Conversation, card: dict[str, Any] | None) -> dict[str, Any]:
    doc = conversation_json(conv)
    if card is not None:
        summary = contact_summary(card)
        doc.update(customer_name=summary.name or conv.customer_name,
                   customer_phone=summary.phone or conv.customer_phone, labels=list(summary.labels))
    return doc


def _csv_values(doc: dict[str, Any]) -> tuple[Any, ...]:
    assignee = doc["assignee"]
    shown = {**doc, "assignee": f"{assignee['kind']}:{assignee['id']}" if assignee else "",
             "labels": ";".join(doc["labels"])}
    return tuple(shown.get(column) for column in EXPORT_COLUMNS)


def _csv_line(values: tuple[Any, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(["" if value is None else value for value in values])
    return buffer.getvalue()
