"""HTTP actions on conversations: assign, take, accept / decline an offer, transfer, close, reopen, snooze,
archive, mark, priority, status, private notes, bulk. Invalid transitions answer 409/422 with the domain's code."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from parley_common.auth import Principal, Role, require_roles
from parley_common.bounds import IsoDatetime, PathId
from parley_common.errors import ApiError, documented_errors
from parley_common.ids import new_id
from parley_router.adapters.conversations import StaleVersion
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Assignee,
    AssigneeKind,
    Conversation,
    Status,
    TransitionError,
)
from parley_router.domain.timeline import EntryKind
from parley_router.handlers.deps import STAFF_OR_BOT, acts_as_bot, engine_of, visible_conversation
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbox import conversation_json

router = APIRouter(prefix="/v1/conversations", tags=["conversation actions"])
Caller = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]
# a bot (an `integration` token) may hand over, close and note the conversations it holds (docs/bots.md)
StaffOrBot = Annotated[Principal, Depends(require_roles(*STAFF_OR_BOT))]
BOT_ERRORS = documented_errors({
    403: "forbidden (a role that may not), not_bots_conversation (a bot's token: a conversation it does not hold)",
    404: "conversation_not_found",
    409: "conversation_closed, already_closed, already_assigned, agent_at_capacity, customer_blocked, "
         "team_has_no_members, concurrent_update",
    422: "validation_failed, unknown_agent, unknown_team"})
Builder = Callable[[datetime, str], Callable[[Conversation], Conversation]]


class Target(BaseModel):
    kind: AssigneeKind
    id: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=4000)


class CloseBody(BaseModel):
    note: str | None = Field(default=None, max_length=4000)


class SnoozeBody(BaseModel):
    until: IsoDatetime


class MarkBody(BaseModel):
    unanswered: bool = Field(strict=True)


class PriorityBody(BaseModel):
    priority: int = Field(strict=True, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="0 normal … 3 urgent")


class StatusBody(BaseModel):
    status: Status


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class BulkBody(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["close", "reopen", "archive", "assign", "status", "priority", "mark"]
    target: Target | None = None
    status: Status | None = None
    priority: int | None = Field(default=None, strict=True)
    unanswered: bool | None = Field(default=None, strict=True)


ATTEMPTS_ON_STALE_VERSION = 4


async def act(engine: Engine, principal: Principal, conversation_id: str, build: Builder, change: str,
              comment: str | None = None) -> dict[str, Any]:
    # A message or a sweep may save the conversation between our read and our write; the person's action is
    # still meant for it, so it is checked again against what is stored now rather than refused at once.
    for _ in range(ATTEMPTS_ON_STALE_VERSION - 1):
        with contextlib.suppress(StaleVersion):
            return await act_once(engine, principal, conversation_id, build, change, comment)
    try:
        return await act_once(engine, principal, conversation_id, build, change, comment)
    except StaleVersion as exc:
        raise ApiError(409, "concurrent_update", "the conversation changed meanwhile; try again") from exc


async def act_once(engine: Engine, principal: Principal, conversation_id: str, build: Builder, change: str,
                   comment: str | None) -> dict[str, Any]:
    conv = await visible_conversation(engine, principal, conversation_id)
    now = engine.clock.now()
    try:
        saved = await engine.change(conv, build(now, principal.login), change, principal.login, comment, now=now)
    except TransitionError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from exc
    return conversation_json(saved)


async def check_target(engine: Engine, tenant_id: str, target: Target) -> Assignee:
    directory = engine.stores.directory
    if target.kind is AssigneeKind.AGENT and await directory.agent(tenant_id, target.id) is None:
        raise ApiError(422, "unknown_agent", f"no agent {target.id!r} in this tenant")
    if target.kind is AssigneeKind.TEAM:
        if target.id not in await directory.team_specs(tenant_id):
            raise ApiError(422, "unknown_team", f"no team {target.id!r} in this tenant")
        if not await directory.agents(tenant_id, target.id):
            raise ApiError(409, "team_has_no_members", f"team {target.id!r} has no agents")
    return Assignee(target.kind, target.id)


async def move(conversation_id: str, body: Target, principal: Principal, request: Request,
               change: str) -> dict[str, Any]:
    engine = engine_of(request)
    target = await check_target(engine, principal.tenant_id, body)
    return await act(engine, principal, conversation_id, lambda now, _: lambda c: conv_rules.assign(c, target, now),
                     change, body.comment)


@router.post("/{conversation_id}/assign", summary="Assign to an agent, team, skill or bot", responses=BOT_ERRORS)
async def assign(conversation_id: PathId, body: Target, principal: StaffOrBot, request: Request) -> dict[str, Any]:
    return await move(conversation_id, body, principal, request, "assigned")


@router.post("/{conversation_id}/transfer", responses=BOT_ERRORS,
             summary="Transfer with a comment (shown on the timeline); a bot's hand-over to a team or agent")
async def transfer(conversation_id: PathId, body: Target, principal: StaffOrBot, request: Request) -> dict[str, Any]:
    return await move(conversation_id, body, principal, request, "transferred")


@router.post("/{conversation_id}/close", summary="Close, with an optional closing note", responses=BOT_ERRORS)
async def close(conversation_id: PathId, body: CloseBody, principal: StaffOrBot, request: Request) -> dict[str, Any]:
    return await act(engine_of(request), principal, conversation_id,
                     lambda now, _: lambda c: conv_rules.close(c, now, body.note), "closed", body.note)


@router.post("/{conversation_id}/snooze", summary="Snooze until a time")
async def snooze(conversation_id: PathId, body: SnoozeBody, principal: Caller, request: Request) -> dict[str, Any]:
    return await act(engine_of(request), principal, conversation_id,
                     lambda now, _: lambda c: conv_rules.snooze(c, body.until, now), "snoozed")


@router.post("/{conversation_id}/mark", summary="Mark answered or unanswered")
async def mark(conversation_id: PathId, body: MarkBody, principal: Caller, request: Request) -> dict[str, Any]:
    return await act(engine_of(request), principal, conversation_id,
                     lambda now, _: lambda c: conv_rules.mark(c, body.unanswered, now), "marked")


@router.post("/{conversation_id}/priority", summary="Set priority (0 normal … 3 urgent)")
async def priority(conversation_id: PathId, body: PriorityBody, principal: Caller, request: Request) -> dict[str, Any]:
    return await act(engine_of(request), principal, conversation_id,
                     lambda now, _: lambda c: conv_rules.set_priority(c, body.priority), "priority_changed")


@router.post("/{conversation_id}/status", summary="Change status by hand (takes it from a bot)")
async def status(conversation_id: PathId, body: StatusBody, principal: Caller, request: Request) -> dict[str, Any]:
    return await act(engine_of(request), principal, conversation_id,
                     lambda now, login: lambda c: conv_rules.set_status(c, body.status, now, login),
                     "status_changed")


@router.post("/{conversation_id}/notes", status_code=201, summary="Add a private note (never sent)",
             responses=BOT_ERRORS)
async def add_note(conversation_id: PathId, body: NoteBody, principal: StaffOrBot, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    conv = await visible_conversation(engine, principal, conversation_id)
    now = engine.clock.now()
    entry_id = f"note:{new_id()}"
    await engine.stores.timeline.put(conv.tenant_id, conv.id, entry_id, EntryKind.NOTE.value, now,
                                     {"text": body.text, "author": principal.login,
                                      "author_kind": "bot" if acts_as_bot(principal) else "human"})
    await engine.publish(conv, "note_added", principal.login, None, now, entry_id=entry_id)
    return {"entry_id": entry_id, "at": now.isoformat()}


SIMPLE_ACTIONS: dict[str, tuple[str, str, Builder]] = {
    "take": ("assigned", "Take: assign to me",
             lambda now, login: lambda c: conv_rules.assign(c, Assignee(AssigneeKind.AGENT, login), now)),
    "accept": ("offer_accepted", "Accept the offer made to me (409 no_pending_offer when there is none)",
               lambda now, login: lambda c: conv_rules.accept_offer(c, login, now)),
    "decline": ("offer_declined", "Decline the offer made to me; it is offered to someone else",
                lambda now, login: lambda c: conv_rules.decline_offer(c, login, now)),
    "reopen": ("reopened", "Reopen: back to the queue", lambda now, _: lambda c: conv_rules.reopen(c, now)),
    "archive": ("archived", "Archive: hidden until someone writes",
                lambda now, _: lambda c: conv_rules.archive(c, now)),
}
_SIMPLE_ACTION_ERRORS = documented_errors({
    404: "conversation_not_found",
    409: "no_pending_offer (accept / decline: no offer of it to you), already_assigned, agent_at_capacity, "
         "customer_blocked, conversation_closed, not_closed, already_archived, concurrent_update"})


def _register_simple_action(action: str, change: str, summary: str, build: Builder) -> None:
    """One concrete route per action, so a method or path no action has gets the shared 405 / 404."""
    async def simple_action(conversation_id: PathId, principal: Caller, request: Request) -> dict[str, Any]:
        return await act(engine_of(request), principal, conversation_id, build, change)

    router.add_api_route(f"/{{conversation_id}}/{action}", simple_action, methods=["POST"], summary=summary,
                         responses=_SIMPLE_ACTION_ERRORS, name=f"conversation_{action}")


for _action, (_change, _summary, _build) in SIMPLE_ACTIONS.items():
    _register_simple_action(_action, _change, _summary, _build)


@router.post("/bulk", summary="Apply one action to a selection; reports each conversation's outcome")
async def bulk(body: BulkBody, principal: Caller, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    target = await check_target(engine, principal.tenant_id, body.target) if body.target else None
    build, change = _bulk_builder(body, target)
    results = []
    for conversation_id in body.ids:
        try:
            await act(engine, principal, conversation_id, build, change)
            results.append({"id": conversation_id, "ok": True})
        except ApiError as exc:
            results.append({"id": conversation_id, "ok": False, "error": exc.code})
    return {"results": results}


def _bulk_builder(body: BulkBody, target: Assignee | None) -> tuple[Builder, str]:
    if body.action == "assign":
        if target is None:
            raise ApiError(422, "target_required", "bulk assign needs a target")
        return (lambda now, _: lambda c: conv_rules.assign(c, target, now)), "assigned"
    if body.action in ("status", "priority", "mark") and getattr(body, _BULK_FIELD[body.action]) is None:
        raise ApiError(422, f"{_BULK_FIELD[body.action]}_required", f"bulk {body.action} needs a value")
    builders: dict[str, Builder] = {
        "close": lambda now, _: lambda c: conv_rules.close(c, now),
        "reopen": lambda now, _: lambda c: conv_rules.reopen(c, now),
        "archive": lambda now, _: lambda c: conv_rules.archive(c, now),
        "status": lambda now, login: lambda c: conv_rules.set_status(c, body.status or Status.QUEUED, now, login),
        "priority": lambda now, _: lambda c: conv_rules.set_priority(c, body.priority or 0),
        "mark": lambda now, _: lambda c: conv_rules.mark(c, bool(body.unanswered), now),
    }
    changes = {"close": "closed", "reopen": "reopened", "archive": "archived", "status": "status_changed",
               "priority": "priority_changed", "mark": "marked"}
    return builders[body.action], changes[body.action]


_BULK_FIELD = {"status": "status", "priority": "priority", "mark": "unanswered"}
