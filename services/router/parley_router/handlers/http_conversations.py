"""HTTP inbox queries: list with filters and cursor, counts per tab, one conversation, timeline, export."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from parley_common.auth import Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import ApiError, documented_errors
from parley_common.visibility import sees_whole_tenant
from parley_router.domain.conversation import Status
from parley_router.domain.tab_counts import tabs
from parley_router.handlers.deps import STAFF_OR_BOT, brands_of, engine_of, teams_of, visible_conversation
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbox import (
    InboxFilter,
    SortKey,
    brand_channels,
    conversation_json,
    decode_cursor,
    decode_entry_cursor,
    encode_cursor,
    encode_entry_position,
    filter_query,
    page_query,
    scope,
)

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]
StaffOrBot = Annotated[Principal, Depends(require_roles(*STAFF_OR_BOT))]  # a bot: its own conversations only
ONE = {403: "forbidden, not_bots_conversation (a bot's token: a conversation it does not hold)",
       404: "conversation_not_found"}


@router.get("", summary="Inbox list: filters, sort, cursor pagination")
async def list_conversations(principal: Caller, request: Request, wanted: Annotated[InboxFilter, Query()],
                             sort: SortKey = "last_activity", cursor: str | None = None,
                             limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    engine = engine_of(request)
    base = scope(principal, await teams_of(engine, principal))
    identities = await engine.stores.directory.identities_matching(principal.tenant_id, wanted.q) if wanted.q else []
    filtered = filter_query(base, wanted, identities, brands_of(request))
    repo = engine.stores.conversations
    if sort == "last_activity":
        found = await repo.find_latest(filtered, limit + 1, engine.clock.now(),
                                       after=decode_cursor(cursor) if cursor else None)
    else:
        found = await repo.find(*page_query(filtered, sort, cursor), limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return {"items": [conversation_json(conv) for conv in page],
            "next_cursor": encode_cursor(page[-1], sort) if more and page else None}


@router.get("/counts", summary="How many conversations per tab (status, unanswered, archived)")
async def counts(principal: Caller, request: Request,
                 brand: Annotated[str | None, Query(description="only this company/brand's channels")] = None,
                 ) -> dict[str, int]:
    engine = engine_of(request)
    channels = brand_channels(brands_of(request), brand) if brand is not None else None
    return await tab_counts(engine, principal, await teams_of(engine, principal), channels)


async def tab_counts(engine: Engine, principal: Principal, teams: frozenset[str], channels: list[str] | None = None,
                     ) -> dict[str, int]:
    """Conversations per tab in the caller's scope: summed from the tab counters (kept per stored transition);
    of some channels only (a brand), counted from the conversations (the counters are not kept per channel)."""
    if channels is None:
        counted = await engine.stores.conversations.counters.of_tenant(principal.tenant_id)
        return tabs(((bucket, counter.n) for bucket, counter in counted.items()), principal.login, teams,
                    sees_whole_tenant(principal))
    base = {**scope(principal, teams), "blocked": False, "channel_id": {"$in": channels}}
    repo = engine.stores.conversations
    result = {status.value: await repo.count({**base, "status": status.value, "archived": False})
              for status in Status}
    result["unanswered"] = await repo.count({**base, "unanswered": True, "archived": False,
                                             "status": {"$ne": Status.CLOSED.value}})
    result["archived"] = await repo.count({**base, "archived": True})
    result["mine"] = await repo.count({**base, "assignee_agent": principal.login,
                                       "status": {"$in": [Status.ASSIGNED.value, Status.SNOOZED.value]}})
    return result


@router.get("/{conversation_id}", summary="One conversation", responses=documented_errors(ONE))
async def get_conversation(conversation_id: PathId, principal: StaffOrBot, request: Request) -> dict[str, Any]:
    return conversation_json(await visible_conversation(engine_of(request), principal, conversation_id))


@router.get("/{conversation_id}/timeline", summary="Messages, notes and activity in provider-time order "
            "(cursor pagination both ways)",
            description="A page of entries, always in timeline order (oldest first). Without a cursor: the first "
            "page; `cursor` (a `next_cursor`): the page after it; `from=latest`: the newest page; `before` (a "
            "`previous_cursor`): the page before it. `next_cursor` / `previous_cursor` point past the page's last / "
            "first entry, null when no entry lies that way. At most one of `cursor`, `before`, `from`.",
            responses=documented_errors({**ONE, 422: "invalid_cursor, conflicting_cursors, validation_failed"}))
async def timeline(conversation_id: PathId, principal: StaffOrBot, request: Request, cursor: str | None = None,
                   before: str | None = None,
                   start: Annotated[Literal["latest"] | None, Query(alias="from")] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 500) -> dict[str, Any]:
    if sum(given is not None for given in (cursor, before, start)) > 1:
        raise ApiError(422, "conflicting_cursors", "give at most one of cursor, before and from")
    engine = engine_of(request)
    conv = await visible_conversation(engine, principal, conversation_id)
    repo = engine.stores.timeline
    if before is None and start is None:  # forward: the page after `cursor` (the first page without one)
        entries = await repo.entries(conv.tenant_id, conv.id, limit + 1,
                                     after=decode_entry_cursor(cursor) if cursor else None)
        page, more = entries[:limit], len(entries) > limit
        earlier, later = cursor is not None, more
    else:  # backward: the newest page, or the page before `before`
        entries = await repo.entries_before(conv.tenant_id, conv.id, limit + 1,
                                            before=decode_entry_cursor(before) if before else None)
        page, more = entries[-limit:], len(entries) > limit
        earlier, later = more, before is not None
    return {"items": [_jsonable(entry) for entry in page],
            "next_cursor": encode_entry_position(page[-1]) if later and page else None,
            "previous_cursor": encode_entry_position(page[0]) if earlier and page else None}


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(entry, default=lambda value: value.isoformat()))
