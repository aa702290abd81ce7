"""A customer's history: their conversations on every channel, by the contact id of contacts' card (a card
merged into another answers with the surviving card's conversations)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from parley_common.auth import Principal, Role, require_roles
from parley_common.errors import documented_errors
from parley_router.handlers.deps import engine_of, teams_of
from parley_router.handlers.inbox import can_see, conversation_json, decode_cursor, encode_position

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]


@router.get("/history", responses=documented_errors({422: "invalid_cursor, validation_failed"}),
            summary="A customer's conversations on every channel, newest opened first (cursor pagination)")
async def history(contact_id: Annotated[str, Query(min_length=1, max_length=128, description="contacts' card id")],
                  principal: Caller, request: Request, cursor: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    """Open and closed, archived and blocked ones too; an agent sees those of their teams and their own (as in the
    inbox). An unknown contact has no conversations (an empty page, not a 404: the card lives in contacts)."""
    engine = engine_of(request)
    card = await engine.stores.directory.contact(principal.tenant_id, contact_id)
    current_id = card["_id"].split("|", 1)[1] if card else contact_id
    teams = await teams_of(engine, principal)
    found = await engine.stores.conversations.of_contact(principal.tenant_id, current_id, limit + 1,
                                                         before=decode_cursor(cursor) if cursor else None)
    page = found[:limit]
    more = len(found) > limit
    return {"contact_id": current_id,
            "items": [conversation_json(conv) for conv in page if can_see(principal, teams, conv)],
            "next_cursor": encode_position(page[-1].opened_at, page[-1].id) if more and page else None}
