"""/v1/saved-replies: snippets with `{{field}}` placeholders (SleekFlow / KAON). Managers and owners manage them,
agents list and read them to send one (`{"kind": "saved_reply", "saved_reply_id": ...}` on POST /v1/messages)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.clock import Clock
from parley_common.errors import ApiError, documented_errors
from parley_common.events.common import ChannelType
from parley_common.ids import new_id
from parley_outbound.adapters.saved_replies_repo import DuplicateName, SavedReplyRepository

READERS = (Role.AGENT, Role.MANAGER, Role.OWNER, Role.INTEGRATION)


class SavedReplyModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="unique in the tenant")
    text: str = Field(min_length=1, max_length=4096, description="may hold {{field}} custom-field placeholders")
    media_id: str | None = Field(default=None, description="one attachment stored by media")
    channel_types: list[ChannelType] = Field(default_factory=list,
                                             description="the channel types it applies to; empty = all")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], **{key: doc.get(key) for key in ("name", "text", "media_id", "channel_types",
                                                                "updated_by", "updated_at")}}


def saved_replies_router(replies: SavedReplyRepository, clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/v1/saved-replies", tags=["saved replies"])
    managers = Depends(require_roles(*MANAGERS))
    readers = Depends(require_roles(*READERS))

    def fields(body: SavedReplyModel, principal: Principal) -> dict[str, Any]:
        return {**body.model_dump(mode="json"), "updated_by": principal.login, "updated_at": clock.now()}

    name_taken = documented_errors({409: "saved_reply_name_taken"})

    @router.post("", status_code=201, summary="Create a saved reply", responses=name_taken)
    async def create(body: SavedReplyModel, principal: Principal = managers) -> dict[str, Any]:
        doc = {"_id": new_id(), "tenant_id": principal.tenant_id, **fields(body, principal)}
        try:
            await replies.create(doc)
        except DuplicateName:
            raise ApiError(409, "saved_reply_name_taken", f"a saved reply is already named {body.name!r}") from None
        return public(doc)

    @router.get("", summary="Saved replies of the tenant, optionally those for one channel type")
    async def list_all(channel_type: ChannelType | None = None,
                       principal: Principal = readers) -> list[dict[str, Any]]:
        docs = await replies.list(principal.tenant_id, channel_type.value if channel_type else None)
        return [public(doc) for doc in docs]

    @router.get("/{reply_id}", summary="One saved reply")
    async def get(reply_id: PathId, principal: Principal = readers) -> dict[str, Any]:
        return public(await _found(replies.get(principal.tenant_id, reply_id)))

    @router.put("/{reply_id}", summary="Replace a saved reply", responses=name_taken)
    async def put(reply_id: PathId, body: SavedReplyModel, principal: Principal = managers) -> dict[str, Any]:
        try:
            updated = replies.replace(principal.tenant_id, reply_id, fields(body, principal))
            return public(await _found(updated))
        except DuplicateName:
            raise ApiError(409, "saved_reply_name_taken", f"a saved reply is already named {body.name!r}") from None

    @router.delete("/{reply_id}", status_code=204, summary="Delete a saved reply")
    async def delete(reply_id: PathId, principal: Principal = managers) -> Response:
        if not await replies.delete(principal.tenant_id, reply_id):
            raise ApiError(404, "saved_reply_not_found", "no such saved reply")
        return Response(status_code=204)

    return router


async def _found(pending: Awaitable[dict[str, Any] | None]) -> dict[str, Any]:
    doc = await pending
    if doc is None:
        raise ApiError(404, "saved_reply_not_found", "no such saved reply")
    return doc
