"""Shared pieces of the HTTP handlers: the engine from app state, the caller's teams, loading with access."""

from __future__ import annotations

from fastapi import Request

from parley_common.auth import Principal, Role
from parley_common.errors import ApiError
from parley_router.domain.bots import is_bots
from parley_router.domain.conversation import Conversation
from parley_router.handlers.engine import Engine
from parley_router.handlers.inbox import can_see


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def brands_of(request: Request) -> dict[str, str]:
    """channel id -> brand, from the router settings."""
    brands: dict[str, str] = request.app.state.brands
    return brands


async def teams_of(engine: Engine, principal: Principal) -> frozenset[str]:
    agent = await engine.stores.directory.agent(principal.tenant_id, principal.login)
    return agent.teams if agent else frozenset()


STAFF = (Role.AGENT, Role.MANAGER, Role.OWNER)
# the routes a bot may use, on its own conversations only: read one and its timeline, hand over (assign /
# transfer), close, note (docs/bots.md)
STAFF_OR_BOT = (*STAFF, Role.INTEGRATION)


def acts_as_bot(principal: Principal) -> bool:
    """An `integration` token without a staff role is a bot: its `sub` is the bot's id (docs/bots.md)."""
    return principal.has_any((Role.INTEGRATION,)) and not principal.has_any(STAFF)


async def visible_conversation(engine: Engine, principal: Principal, conversation_id: str) -> Conversation:
    """404 for another tenant's conversation and for one the caller may not see (no existence leak); a bot may
    act only on the conversations it holds now (403 `not_bots_conversation`: the tenant's integrations know of
    every conversation anyway)."""
    conv = await engine.stores.conversations.get(principal.tenant_id, conversation_id)
    if conv is None or not can_see(principal, await teams_of(engine, principal), conv):
        raise ApiError(404, "conversation_not_found", "no such conversation")
    if acts_as_bot(principal) and not is_bots(conv, principal.login):
        raise ApiError(403, "not_bots_conversation",
                       f"the conversation is not held by bot {principal.login!r} (handed over, closed, or never its)")
    return conv
