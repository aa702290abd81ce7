"""A service's own projection of what the visibility rule needs: whose each conversation key is (from
parley.conversations.events.v1) and each agent's teams (from parley.agents.events.v1), in the service's own
database. No service asks the router: the facts arrive as events, like every other projection."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.auth import Principal
from parley_common.consumer_groups import Reads
from parley_common.errors import ApiError
from parley_common.events.conversations import AgentChanged, ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.mongo import in_pages, insert_new
from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS
from parley_common.visibility import Owner, may_see_any, owner_of, sees_whole_tenant, visible_whatever_the_teams

Doc = dict[str, Any]
OWNERS = "visibility_owners"
AGENTS = "visibility_agents"
# Conversation keys whose stored state a process remembers, the least recently written forgotten first: the keys
# whose conversations are moving now. A key forgotten is only written again at its next event.
REMEMBERED_KEYS = 50_000
# After partitions move, how long nothing written is remembered: the replica that gave a partition up may still be
# finishing a batch of it (its write landing after this one's), and a key's next event must then write again.
SETTLE_SECONDS = 5.0
Stored = tuple[str, str | None, str | None, str]  # what a reader needs: conversation, team, agent, status


class VisibilityProjection:
    def __init__(self, db: AsyncDatabase[Doc], remembered_keys: int = REMEMBERED_KEYS,
                 settle_seconds: float = SETTLE_SECONDS) -> None:
        self._owners = db[OWNERS]
        self._agents = db[AGENTS]
        self._remembered_keys = remembered_keys
        self._settle_seconds = settle_seconds
        # What this process last stored per key. True of the database while only this process writes the keys of
        # its partitions: forgotten when they move (`forget_stored`), and a failed write forgets its keys. Writes
        # skip what it holds already, and reads of who owns a key answer from it (a replica's requests for keys of
        # other replicas' partitions read the database).
        self._stored: OrderedDict[str, Stored] = OrderedDict()
        self._moves = 0  # partition moves so far: a write that overlapped one is not remembered
        self._moved_at = time.monotonic()

    async def on_conversations_changed(self, events: Sequence[ConversationChanged]) -> None:
        """The key's latest conversation decides: one key's events arrive in order, so the last of a batch per
        key is its state. Only the keys whose state (conversation, team, agent, status) differs from what this
        process last stored are written, in bulk (`_write`): most events (a message appended, a contact changed)
        change none of it. A redelivery ends where it was: what equals the memory is skipped, what differs is written
        again in order. `changed_at` is therefore when the stored state began, not the key's latest event."""
        latest = {str(event.conversation_key): event for event in events}
        changed = {key: event for key, event in latest.items() if self._stored.get(key) != _stored_state(event)}
        if not changed:
            return
        moves, started = self._moves, time.monotonic()
        try:
            await self._write(changed)
        except BaseException:
            for key in changed:  # some may have been written: what is stored is unknown until written again
                self._stored.pop(key, None)
            raise
        if moves == self._moves and started - self._moved_at >= self._settle_seconds:
            self._remember(changed)

    async def _write(self, changed: dict[str, ConversationChanged]) -> None:
        """The keys this process does not remember are most likely new conversations' (or a returning customer's):
        inserted, not upserted — on the local database an upsert costs several inserts. Only those already
        stored (a key forgotten, or written by another replica) are then updated, with the remembered ones."""
        unknown = [key for key in changed if key not in self._stored]
        stored_before = await insert_new(self._owners, [{"_id": key, **_owner_fields(changed[key])}
                                                        for key in unknown]) if unknown else set()
        updated = [key for key in changed if key in self._stored] + [unknown[index] for index in sorted(stored_before)]
        if updated:
            await self._owners.bulk_write([UpdateOne({"_id": key}, {"$set": _owner_fields(changed[key])}, upsert=True)
                                           for key in updated], ordered=False)

    def forget_stored(self) -> None:
        """Partitions moved (`Reads.on_partitions_moved`): another replica may have written their keys since this
        one did — a replica regaining a partition must not trust what it stored before."""
        self._moves += 1
        self._moved_at = time.monotonic()
        self._stored.clear()

    def _remember(self, written: dict[str, ConversationChanged]) -> None:
        for key, event in written.items():
            self._stored[key] = _stored_state(event)
            self._stored.move_to_end(key)
        while len(self._stored) > self._remembered_keys:
            self._stored.popitem(last=False)

    async def every_owner(self, page: int) -> AsyncIterator[list[Doc]]:
        """Every conversation key's latest state (owner, status, and changed_at: when that state began), `page` at a
        time — those stored since the status is kept: what a service's cache of who holds each thread is restored
        from."""
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
        """Each key's owner as stored; a key this process remembers storing is answered from that memory, which is
        what the database holds for it (`_stored`), and only the others are read."""
        ids = [str(key) for key in keys]
        found = {key_id: Owner(stored[1], stored[2]) for key_id in ids
                 if (stored := self._stored.get(key_id)) is not None}
        unknown = [key_id for key_id in ids if key_id not in found]
        if unknown:
            found |= {doc["_id"]: Owner(doc.get("team_id"), doc.get("agent"))
                      async for doc in self._owners.find({"_id": {"$in": unknown}})}
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


def _stored_state(event: ConversationChanged) -> Stored:
    owner = owner_of(event)
    return event.conversation_id, owner.team_id, owner.agent, event.status


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
                  formerly=(f"{formerly_prefix}-visibility",), on_partitions_moved=projection.forget_stored),
            Reads(AGENTS_EVENTS, projection.on_agent_changed, formerly=(f"{formerly_prefix}-agents",)))
