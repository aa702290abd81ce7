"""A service's own projection of what the visibility rule needs: whose each conversation key is (from
parley.conversations.events.v1) and each agent's teams (from parley.agents.events.v1), in the service's own
database. No service asks the router: the facts arrive as events, like every other projection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.auth import Principal
from parley_common.errors import ApiError
from parley_common.events.conversations import AgentChanged, ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.kafka import subscribe
from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS
from parley_common.visibility import Owner, may_see_any, owner_of, sees_whole_tenant

Doc = dict[str, Any]
OWNERS = "visibility_owners"
AGENTS = "visibility_agents"


class VisibilityProjection:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._owners = db[OWNERS]
        self._agents = db[AGENTS]

    async def on_conversation_changed(self, event: ConversationChanged) -> None:
        """The key's latest conversation decides (one key's events arrive in order; a redelivery re-applies the
        same states in the same order and ends where it was)."""
        owner = owner_of(event)
        await self._owners.update_one(
            {"_id": str(event.conversation_key)},
            {"$set": {"tenant_id": event.tenant_id, "conversation_id": event.conversation_id,
                      "team_id": owner.team_id, "agent": owner.agent, "changed_at": event.changed_at}},
            upsert=True)

    async def on_agent_changed(self, event: AgentChanged) -> None:
        await self._agents.update_one(
            {"_id": f"{event.tenant_id}|{event.login}"},
            {"$set": {"tenant_id": event.tenant_id, "login": event.login, "teams": list(event.teams)}}, upsert=True)

    async def teams_of(self, principal: Principal) -> frozenset[str]:
        doc = await self._agents.find_one({"_id": f"{principal.tenant_id}|{principal.login}"})
        return frozenset(doc["teams"]) if doc else frozenset()

    async def owners(self, keys: Sequence[ConversationKey]) -> list[Owner | None]:
        ids = [str(key) for key in keys]
        found = {doc["_id"]: Owner(doc.get("team_id"), doc.get("agent"))
                 async for doc in self._owners.find({"_id": {"$in": ids}})}
        return [found.get(key_id) for key_id in ids]

    async def may_see(self, principal: Principal, keys: Sequence[ConversationKey]) -> bool:
        """The rule for a customer reached through `keys` (one key, or a contact's identities)."""
        if sees_whole_tenant(principal):
            return True  # no reads for tenant-wide callers
        return may_see_any(principal, await self.teams_of(principal), await self.owners(keys))

    async def visible_each(self, principal: Principal, customers: Sequence[Sequence[ConversationKey]]) -> list[bool]:
        """`may_see` for each customer of a page, with one read of their owners."""
        if sees_whole_tenant(principal):
            return [True] * len(customers)
        owners = iter(await self.owners([key for keys in customers for key in keys]))
        teams = await self.teams_of(principal)
        return [may_see_any(principal, teams, [next(owners) for _ in keys]) for keys in customers]

    async def require(self, principal: Principal, keys: Sequence[ConversationKey], not_found: ApiError) -> None:
        """Raise `not_found` (the same answer as for something that does not exist: no existence leak)."""
        if not await self.may_see(principal, keys):
            raise not_found


def follow_visibility(broker: KafkaBroker, projection: VisibilityProjection, group_prefix: str,
                      also_on_conversation: Callable[[ConversationChanged], Awaitable[None]] | None = None,
                      **common: Any) -> None:
    """Keep `projection` from both topics (groups `<group_prefix>-visibility` and `-agents`); a service that
    has its own use for conversation events passes it as `also_on_conversation` (one consumer for both)."""

    async def on_conversation(event: ConversationChanged) -> None:
        await projection.on_conversation_changed(event)
        if also_on_conversation is not None:
            await also_on_conversation(event)

    subscribe(broker, CONVERSATIONS_EVENTS, group_id=f"{group_prefix}-visibility", handle=on_conversation, **common)
    subscribe(broker, AGENTS_EVENTS, group_id=f"{group_prefix}-agents", handle=projection.on_agent_changed, **common)
