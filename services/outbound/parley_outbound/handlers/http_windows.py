"""GET /v1/windows/{channel}/{customer}: is the window open, until when, what may be sent now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from parley_common.auth import Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import ApiError, documented_errors
from parley_common.ids import ConversationKey
from parley_common.visibility_store import VisibilityProjection
from parley_outbound.domain.window_view import window_view
from parley_outbound.handlers.http_messages import WINDOW_FACTS_REBUILDING
from parley_outbound.handlers.sending import Sender as Pipeline

READERS = (Role.AGENT, Role.MANAGER, Role.OWNER, Role.INTEGRATION)


def windows_router(pipeline: Pipeline, visibility: VisibilityProjection) -> APIRouter:
    router = APIRouter(prefix="/v1/windows", tags=["windows"])

    @router.get("/{channel_id}/{customer}", summary="The messaging window with one customer on one channel",
                responses=documented_errors({404: "unknown_channel, conversation_not_found",
                                             503: WINDOW_FACTS_REBUILDING}))
    async def window(channel_id: PathId, customer: PathId,
                     principal: Principal = Depends(require_roles(*READERS))) -> dict[str, Any]:
        channel = pipeline.channels.for_caller(principal.tenant_id, channel_id)
        key = ConversationKey(principal.tenant_id, channel_id, customer)
        await visibility.require(principal, [key], ApiError(404, "conversation_not_found",
                                                            "no conversation with this customer that you may see"))
        facts = await pipeline.projections.facts(key)
        now = pipeline.clock.now()
        view = window_view(channel.type, facts, now)
        return {
            "channel_id": channel_id, "channel_type": channel.type.value, "customer": customer,
            "has_window": view.has_window, "open": view.open,
            "closes_at": view.closes_at, "remaining_seconds": view.remaining.total_seconds()
            if view.remaining is not None else None,
            "human_agent_closes_at": view.human_agent_closes_at, "last_customer_message_at": view.last_customer_at,
            "blocked": facts.blocked, "subscribed": facts.subscribed,
            "marketing_opted_out": facts.marketing_opted_out,
            "allowed": [{"sender_kind": a.sender_kind.value, "message_kind": a.message_kind.value,
                         "verdict": a.verdict, "reason": a.reason, "tag": a.tag} for a in view.allowed],
        }

    return router
