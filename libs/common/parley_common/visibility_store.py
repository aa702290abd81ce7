"""A service's own projection of what the visibility rule needs: whose each conversation key is (from
parley.conversations.events.v1) and each agent's teams (from parley.agents.events.v1), in the service's own
database. No service asks the router: the facts arrive as events, like every other projection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.auth import Principal
from parley_common.consumer_groups import Reads
from parley_common.errors import ApiError
from parley_common.events.conversations import AgentChanged, ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.mongo import in_pages
from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS
from parley_common.visibility import Owner, may_see_any, owner_of, sees_whole_tenant, visible_whatever_the_teams

Doc = dict[str, Any]
OWNERS = "visibility_owners"
AGENTS = "visibility_agents"


class VisibilityProjection:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._owners = db[OWNERS]
        self._agents = db[AGENTS]

    async def on_conversations_changed(self, events: Sequence[ConversationChanged]) -> None:
        """The key's latest conversation decides: one key's events arrive in order, so the last of a batch per
        key is its state, and one bulk write stores them all (a redelivery re-applies the same states in the same
        order and ends where it was). One write per batch instead of one per event: with five events per
        inbound message, in three services, these were 15 database round trips per message."""
        latest = {str(event.conversation_key): event for event in events}
        await self._owners.bulk_write([UpdateOne({"_id": key}, {"$set": _owner_fields(event)}, upsert=True)
                                       for key, event in latest.items()], ordered=False)

    async def every_owner(self, page: int) -> AsyncIterator[list[Doc]]:
        """Every conversation key's latest state (owner, status, changed_at), `page` at a time — those stored since
        the status is kept: what a service's cache of who holds each thread is restored from."""
        async for docs in in_pages(self._owners.find({"status": {"$exists": True}}, batch_size=page), page):
            yield docs

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
        owners = await self.owners(keys)
        if visible_whatever_the_teams(principal, owners):
            return True  # e.g. an agent answering their own customer: one read, not two
        return may_see_any(principal, await self.teams_of(principal), owners)

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


def _owner_fields(event: ConversationChanged) -> Doc:
    owner = owner_of(event)
    return {"tenant_id": event.tenant_id, "conversation_id": event.conversation_id, "team_id": owner.team_id,
            "agent": owner.agent, "status": event.status, "changed_at": event.changed_at}


def visibility_reads(projection: VisibilityProjection, formerly_prefix: str,
                     also_on_conversations: Callable[[list[ConversationChanged]], Awaitable[None]] | None = None,
                     ) -> tuple[Reads, Reads]:
    """What keeps `projection`: both topics, for the service's consumer group. A service that has its own use for
    conversation events passes it as `also_on_conversations` (called with the batch's events, in order, after
    the projection stored the batch). `formerly_prefix`: the groups `<prefix>-visibility` and `-agents` read
    these topics until issue 17 (their offsets are adopted once, parley_common.group_offsets)."""

    async def on_conversations(events: list[ConversationChanged]) -> None:
        await projection.on_conversations_changed(events)
        if also_on_conversations is not None:
            await also_on_conversations(events)

    return (Reads(CONVERSATIONS_EVENTS, on_conversations, whole_batch=True,
                  formerly=(f"{formerly_prefix}-visibility",)),
            Reads(AGENTS_EVENTS, projection.on_agent_changed, formerly=(f"{formerly_prefix}-agents",)))
