"""The router's service layer: load → domain transition → capacity bookkeeping → store → timeline →
publish, and the dispatcher that hands queued conversations to free agents."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

import structlog
from prometheus_client import Counter

from parley_common.clock import Clock
from parley_common.events.common import ChannelType
from parley_common.events.conversations import Assignee as EventAssignee
from parley_common.events.conversations import ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.kafka import EventPublisher
from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.adapters.broadcast_deliveries import BroadcastDeliveries
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.adapters.conversations import ConversationRepository, StaleVersion
from parley_router.adapters.directory import Directory, contact_summary
from parley_router.adapters.directory_cache import DirectoryCache
from parley_router.adapters.presence import PresenceStore, Take
from parley_router.adapters.timeline import ProcessedEvents, TimelineRepository
from parley_router.domain import bots
from parley_router.domain import conversation as conv_rules
from parley_router.domain.assignment import (
    DEFAULT_CAPACITY,
    Agent,
    Plan,
    Presence,
    Roster,
    Team,
    Waiting,
    candidate_logins,
    drain,
)
from parley_router.domain.capacity import repairs
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status, TransitionError
from parley_router.domain.timeline import EntryKind
from parley_router.handlers.coalescing import DispatchCoalescer

log = structlog.get_logger(__name__)
BOT_FALLBACKS = Counter("parley_router_bot_fallbacks", "Conversations a bot did not answer in time, handed to its "
                        "fallback team", ["tenant", "bot"])
CHANNEL_TYPES = [channel.value for channel in ChannelType]
HOLDS_CAPACITY = (Status.ASSIGNED, Status.SNOOZED)
# Re-plans after offers lost to a concurrent dispatcher; each pass re-reads the queue and live capacity.
DISPATCH_PASSES = 3
TAKE_ATTEMPTS = 3  # a take refused for a capacity read before the latest directory write (or lost slots) tries again
Transition = Callable[[Conversation], Conversation]
Announce = Callable[[Conversation], ConversationChanged]  # a new conversation's `opened` event, built


@dataclass
class Stores:
    conversations: ConversationRepository
    timeline: TimelineRepository
    directory: Directory
    presence: PresenceStore
    processed: ProcessedEvents
    broadcasts: BroadcastDeliveries
    audit: CapacityAudit

    async def ensure_indexes(self) -> None:
        await self.broadcasts.ensure_indexes()
        await self.conversations.ensure_indexes()
        await self.timeline.ensure_indexes()
        await self.directory.ensure_indexes()


@dataclass
class _Opening:
    """A new conversation whose key this process claimed, not stored yet: an offer made to it stores it, and its
    `opened` event is published with the offer's."""
    announce: Announce
    stored: Conversation | None = None


def _holder(conv: Conversation) -> str | None:
    return conv.agent if conv.status in HOLDS_CAPACITY else None


class Engine:
    def __init__(self, stores: Stores, publisher: EventPublisher, clock: Clock, correlation: str = "router",
                 cache_ttl_seconds: float = 2.0) -> None:
        self.stores = stores
        self.cache = DirectoryCache(stores.directory, cache_ttl_seconds)
        self.publisher = publisher
        self.clock = clock
        self._correlation = correlation
        self._coalescer = DispatchCoalescer(lambda tenant_id, convs: self.dispatch(tenant_id, only=convs))
        self._rosters: dict[str, tuple[dict[str, Agent], Roster]] = {}  # tenant → (agents it indexes, index)
        self._opening: dict[str, _Opening] = {}  # conversation id → its opening, while it is planned
        self._rebuilding: dict[str, asyncio.Lock] = {}  # tenant → one slot rebuild at a time in this process

    async def open_new(self, conv: Conversation, announce: Announce) -> Conversation:
        """Store a new conversation whose key was just claimed, then `announce` it (its `opened` event). A queued
        one is planned first, with the others queued meanwhile, and when an agent has room it is stored already
        offered: one insert instead of an insert and an update (that update was half of the local database's
        work per routed message), and its `opened` event goes out together with the `offered` one. Returns it as
        stored; a failure before it was stored gives the key back."""
        opening = _Opening(announce)
        try:
            if conv_rules.queue_target(conv) is not None:
                self._opening[conv.id] = opening
                try:
                    await self.offer_soon(conv)
                finally:
                    del self._opening[conv.id]
            if opening.stored is None:  # a bot's, a blocked customer's, or nobody has room: offered when room frees
                opening.stored = await self.stores.conversations.insert(conv)
                await self.publisher.publish(announce(conv), CONVERSATIONS_EVENTS)
        except Exception:
            if opening.stored is None:
                await self.stores.conversations.release_claim(conv)
            raise
        return opening.stored

    async def with_known_contact(self, conv: Conversation) -> Conversation:
        """`conv` showing its customer's card when the projection of contacts' events knows it already."""
        key = ConversationKey(conv.tenant_id, conv.channel_id, conv.external_user_id)
        contact = await self.stores.directory.contact_of(key)
        return conv_rules.with_contact(conv, contact_summary(contact)) if contact else conv

    async def learn_contact(self, conv: Conversation, attempts: int = 3) -> None:
        """Show the customer's card on a stored conversation, if the projection knows one it does not show yet
        (`contact_changed`): none, or another than the one its first message's contact was named (a card an agent
        made, the projection behind); a concurrent save makes it read the conversation again."""
        for _ in range(attempts):
            known = await self.with_known_contact(conv)
            if known == conv:
                return
            try:
                await self.change(conv, _replaced_by(known), "contact_changed", "contacts", dispatch_after=False)
                return
            except StaleVersion:
                current = await self.stores.conversations.get(conv.tenant_id, conv.id)
                if current is None:
                    return
                conv = current

    async def offer_soon(self, conv: Conversation) -> None:
        """Offer this queued conversation to a free agent, planned together with others queued meanwhile."""
        await self._coalescer.offer(conv)

    async def change(self, conv: Conversation, transition: Transition, change: str, actor: str,
                     comment: str | None = None, now: datetime | None = None,
                     *, dispatch_after: bool = True, entry_id: str | None = None) -> Conversation:
        """Apply one transition and make it durable: capacity, store, activity entry, event. `entry_id`: the
        message entry a `message_appended` is about (live screens show it without fetching)."""
        now = now or self.clock.now()
        after = transition(conv)
        if after == conv:
            if entry_id is not None:  # a message that changed nothing (the same second as the last one) is news still
                await self.publish(conv, change, actor, comment, now, conv, entry_id)
            return conv
        after = conv_rules.stamp_first_assignment(after, now)
        if not conv.is_open and after.is_open and not await self.stores.conversations.claim_open(after):
            raise TransitionError("another_conversation_open", "the customer already has an open conversation")
        presence = self.stores.presence
        newcomer = _holder(after) if _holder(after) != _holder(conv) else None
        leaving = _holder(conv) if _holder(conv) != _holder(after) else None
        taken, stamp = await self._take(after, newcomer) if newcomer is not None else (None, None)
        if taken is Take.FULL:
            raise TransitionError("agent_at_capacity", f"{newcomer} has no free capacity on {conv.channel_type}")
        # read before the save: a take of the same slot after it (the conversation given straight back to the
        # same agent by another replica) stamps it anew, and then the slot is not ours to give back
        leaving_stamp = await presence.stamp_of(conv.tenant_id, leaving, conv.channel_type, conv.id) if (
            leaving is not None) else None
        try:
            saved, opened = await self._store(conv, after)
        except StaleVersion:
            # the slot goes back only if no other replica's take stamped it since ours; a slot that was already
            # there (ALREADY_HELD) may be a stored assignment to this agent: it goes back only if the stored
            # conversation is not this agent's (a take after that read re-stamps it, and then it stays)
            if newcomer is not None and (taken is Take.TAKEN or (
                    taken is Take.ALREADY_HELD and not await self._held_by(conv, newcomer))):
                await presence.release_if(conv.tenant_id, newcomer, conv.channel_type, conv.id, stamp)
            raise
        if leaving is not None:
            await presence.release_if(conv.tenant_id, leaving, conv.channel_type, conv.id, leaving_stamp)
        freed = leaving is not None
        await self.record(saved, change, actor, comment, now, previous=conv, entry_id=entry_id, first=opened)
        if dispatch_after and freed:
            await self.dispatch(conv.tenant_id)  # the freed slot may serve the longest-waiting conversation
        elif dispatch_after and conv_rules.queue_target(saved) is not None:
            await self.offer_soon(saved)
        return saved

    async def _store(self, before: Conversation, after: Conversation) -> tuple[Conversation, list[ConversationChanged]]:
        """`after` stored, and the events that must go out before this change's own: a conversation being opened
        is inserted here, and its `opened` event (as it was before the offer) is published with the offer's."""
        opening = self._opening.get(before.id)
        if opening is None or opening.stored is not None:
            return await self.stores.conversations.save(after, before), []
        opening.stored = await self.stores.conversations.insert(replace(after, version=before.version + 1))
        return opening.stored, [opening.announce(before)]

    async def _held_by(self, conv: Conversation, login: str) -> bool:
        current = await self.stores.conversations.get(conv.tenant_id, conv.id)
        return current is not None and _holder(current) == login

    async def _take(self, conv: Conversation, login: str) -> tuple[Take, int]:
        for _ in range(TAKE_ATTEMPTS):
            agents, version = await self.cache.agents_at(conv.tenant_id)
            agent = agents.get(login)
            # a login router has no profile for yet (e.g. replying from another tool) gets the default capacity
            capacity = agent.max_for(conv.channel_type) if agent else DEFAULT_CAPACITY
            taken = await self.stores.presence.take(conv.tenant_id, login, conv.channel_type, conv.id, capacity,
                                                    version)
            if taken[0] is Take.NOT_REBUILT:
                await self.rebuild_slots(conv.tenant_id)
            elif taken[0] is Take.STALE_CAPACITY:
                self.cache.invalidate(conv.tenant_id)  # another replica changed the directory: read it again
            else:
                return taken
        return Take.FULL, 0

    async def directory_written(self, tenant_id: str, version: int) -> None:
        """The tenant's agents, teams or routing were just stored at `version`: this process reads them again, and
        every replica's take with an older capacity is refused until it has too."""
        await self.stores.presence.note_directory_version(tenant_id, version)
        self.cache.invalidate(tenant_id)

    async def rebuild_slots(self, tenant_id: str) -> None:
        """The cache does not have the tenant's slots (Redis restarted empty, or never had them): put back every
        conversation MongoDB says an agent holds, then let takes go on — a take counted against lost slots would
        put the agent over capacity. Replicas may rebuild at once: putting back is idempotent."""
        presence = self.stores.presence
        async with self._rebuilding.setdefault(tenant_id, asyncio.Lock()):
            if not await presence.begin_rebuild(tenant_id):
                return
            started = await self.stores.audit.server_time_ms()
            held = await self.stores.audit.held(tenant_id)
            # only puts back (no cutoff), and not what was given back since the read began
            await self.stores.audit.heal(tenant_id, repairs({}, held), cutoff_ms=0, read_since_ms=started)
            # the directory version the cache lost too: a replica's capacities older than it are read again
            await presence.note_directory_version(tenant_id, await self.stores.directory.version(tenant_id))
            if await presence.finish_rebuild(tenant_id):
                log.warning("capacity_slots_rebuilt", tenant_id=tenant_id, held=sum(map(len, held.values())))

    async def record(self, conv: Conversation, change: str, actor: str, comment: str | None, now: datetime,
                     previous: Conversation | None = None, entry_id: str | None = None,
                     first: Sequence[ConversationChanged] = ()) -> None:
        """Activity entry on the timeline (messages have their own entries) and the published event, with `first`
        (published before it, together)."""
        if change not in ("message_appended", "note_added", "opened", "contact_changed", "message_status"):
            activity_id = f"act:{conv.version:08d}"  # one per saved version: a repeated record overwrites
            await self.stores.timeline.put(conv.tenant_id, conv.id, activity_id, EntryKind.ACTIVITY.value, now, {
                "change": change, "actor": actor, "comment": comment, "status": conv.status.value,
                "assignee": {"kind": conv.assignee.kind.value, "id": conv.assignee.id} if conv.assignee else None})
            entry_id = entry_id or activity_id  # a change a message caused (a reply that took it) names the message
        await self.publish(conv, change, actor, comment, now, previous, entry_id, first=first)

    async def publish(self, conv: Conversation, change: str, actor: str, comment: str | None, now: datetime,
                      previous: Conversation | None = None, entry_id: str | None = None,
                      *, first: Sequence[ConversationChanged] = (), event_id: UUID | None = None) -> None:
        """The change's event, after `first` and in one produce request with them; `event_id`: the same whenever
        it is published (a change that a redelivered record makes again)."""
        event = self.event(conv, change, actor, comment, now, previous, entry_id, event_id)
        await self.publisher.publish_together([*first, event], CONVERSATIONS_EVENTS)

    def event(self, conv: Conversation, change: str, actor: str, comment: str | None, now: datetime,
              previous: Conversation | None = None, entry_id: str | None = None,
              event_id: UUID | None = None) -> ConversationChanged:
        # `opened` is announced again when its message is redelivered after a crash (it may have been published
        # before the crash): every copy carries the same event id, so subscribers' event-id de-duplication holds.
        # so is a message's `message_appended` (its message may be handled again after a crash, and one that
        # changed nothing of its conversation is announced on every attempt)
        if event_id is None and change == "opened":
            event_id = opened_event_id(conv.id)
        elif event_id is None and change == "message_appended" and entry_id:
            event_id = appended_event_id(conv.id, entry_id)
        same_every_time = {"event_id": event_id} if event_id else {}
        return ConversationChanged(
            **same_every_time,
            occurred_at=now, tenant_id=conv.tenant_id, correlation_id=self._correlation,
            channel_id=conv.channel_id, external_user_id=conv.external_user_id, conversation_id=conv.id,
            change=change, status=conv.status.value, assignee=_event_assignee(conv.assignee), actor=actor,
            comment=comment, changed_at=now, team_id=conv.team_id, priority=conv.priority, archived=conv.archived,
            unanswered=conv.unanswered, channel_type=conv.channel_type, offer_expires_at=conv.offer_expires_at,
            snoozed_until=conv.snoozed_until, entry_id=entry_id, contact_id=conv.contact_id,
            previous_assignee=_event_assignee(previous.assignee) if previous else None,
        )

    async def dispatch(self, tenant_id: str, only: Sequence[Conversation] | None = None, limit: int = 200) -> int:
        """Offer queued conversations (the tenant's queue, or just `only`) to free agents; returns how many were
        offered. The tenant's queue is read `limit` at a time, and read on while a whole page was offered: an agent
        coming online to a queue longer than a page has room for more, and nothing else would offer them it
        (a new message dispatches only its own conversation)."""
        if only is not None:
            return await self._dispatch_page(tenant_id, only, limit)
        offered = 0
        while (made := await self._dispatch_page(tenant_id, None, limit)) >= limit:
            offered += made
        return offered + made

    async def _dispatch_page(self, tenant_id: str, only: Sequence[Conversation] | None, limit: int) -> int:
        """One page of the queue (or `only`) offered. When another replica dispatches at the same time, some
        planned offers lose the race (the conversation or the slot was taken meanwhile) and the slot they planned
        may still be free: plan again from fresh state, a bounded number of times, so no free agent is left idle
        while conversations wait."""
        offered = 0
        pending = list(only) if only is not None else None
        for _ in range(DISPATCH_PASSES):
            queue = pending if pending is not None else await self.stores.conversations.queued(tenant_id, limit)
            made, lost = await self._dispatch_pass(tenant_id, queue)
            offered += made
            if not lost:
                break
            if pending is not None:
                pending = await self._current(tenant_id, lost)
        return offered

    async def _current(self, tenant_id: str, convs: list[Conversation]) -> list[Conversation]:
        """These conversations as stored now (one may have moved on meanwhile); one being opened is not stored
        yet, and nothing else knows it to change it."""
        unstored = {conv.id: conv for conv in convs
                    if conv.id in self._opening and self._opening[conv.id].stored is None}
        stored = [conv.id for conv in convs if conv.id not in unstored]
        return [*unstored.values(), *await self.stores.conversations.get_many(tenant_id, stored)]

    async def _dispatch_pass(self, tenant_id: str, queue: list[Conversation]) -> tuple[int, list[Conversation]]:
        """One plan against one snapshot of live state; offers run concurrently. Returns how many were made and
        the conversations whose planned offer lost a race."""
        waiting = [w for w in (self._waiting(conv) for conv in queue) if w is not None]
        if not waiting:
            return 0, []
        teams = await self.cache.teams(tenant_id)
        plan, before, cursors = await self._plan(tenant_id, waiting, teams)
        by_id = {conv.id: conv for conv in queue}
        # every offer finishes before a failure goes up: an opening whose offer was still storing it would
        # otherwise take the failure for "not stored", give its key back, and leave a stored conversation keyless
        results = await asyncio.gather(*(self._offer(by_id[conversation_id], login, teams)
                                         for conversation_id, login in plan.assignments), return_exceptions=True)
        if failures := [result for result in results if isinstance(result, BaseException)]:
            raise failures[0]
        # the round-robin cursor moves once per team, to where this plan left it
        await self.stores.presence.set_cursors(tenant_id, {team_id: login for team_id, login in cursors.items()
                                                           if team_id in teams and before.get(team_id) != login})
        lost = [by_id[conversation_id] for (conversation_id, _), made in zip(plan.assignments, results, strict=True)
                if not made]
        return len(plan.assignments) - len(lost), lost

    async def _plan(self, tenant_id: str, waiting: list[Waiting],
                    teams: dict[str, Team]) -> tuple[Plan, dict[str, str], dict[str, str]]:
        """The plan, with the round-robin cursors before and after it. Live state is read for the candidates
        `candidate_logins` names (a rotation window for a large round-robin team); when that leaves a
        conversation waiting, again for everyone in scope, so nobody with room stays idle while work waits.
        (Within a window round robin may come back to its first agents before reaching those past the window:
        only when more than half the window has no room.)"""
        team_ids = sorted({w.target.id for w in waiting if w.target.kind is AssigneeKind.TEAM})
        channel_types = sorted({w.channel_type for w in waiting})
        directory = await self._directory_roster(tenant_id)
        before = await self.stores.presence.cursors(tenant_id, team_ids)
        logins, complete = candidate_logins(directory, waiting, teams, before)
        while True:
            cursors = dict(before)
            plan = drain(waiting, await self._live(tenant_id, directory, logins, channel_types), teams, cursors)
            if complete or not plan.still_waiting:
                return plan, before, cursors
            logins, complete = directory.in_scope_of(waiting), True

    async def _directory_roster(self, tenant_id: str) -> Roster:
        """The tenant's agents indexed by team and skill, rebuilt only when the directory cache loaded them anew:
        scanning 1,000 agents on every plan cost ~1.7 ms per routed message at low rates (py-spy)."""
        agents = await self.cache.agents(tenant_id)
        indexed = self._rosters.get(tenant_id)
        if indexed is None or indexed[0] is not agents:
            indexed = (agents, Roster(list(agents.values())))
            self._rosters[tenant_id] = indexed
        return indexed[1]

    def _waiting(self, conv: Conversation) -> Waiting | None:
        target = conv_rules.queue_target(conv)
        if target is None:
            return None
        return Waiting(conv.id, conv.channel_type, target, conv.priority, conv.waiting_since or conv.opened_at,
                       conv.sticky_agent, frozenset(conv.declined_by))

    async def _live(self, tenant_id: str, directory: Roster, logins: list[str],
                    channel_types: list[str]) -> list[Agent]:
        """These agents with their presence and live active counts on the channel types that matter now: the
        online ones with room, one Redis round trip."""
        chosen = [directory.by_login[login] for login in logins]
        presence, counts = await self.stores.presence.snapshot(tenant_id, [agent.login for agent in chosen],
                                                               channel_types)
        live = (agent.live(Presence.ONLINE, counts[agent.login]) for agent in chosen
                if presence[agent.login] is Presence.ONLINE)
        return [agent for agent in live if agent.has_room_on_any()]

    async def _offer(self, conv: Conversation, login: str, teams: dict[str, Team]) -> bool:
        now = self.clock.now()
        team = teams.get(conv.team_id or "")
        expires = now + timedelta(seconds=team.offer_timeout_seconds if team else 300)
        target = Assignee(AssigneeKind.AGENT, login)
        try:
            await self.change(conv, lambda c: conv_rules.assign(c, target, now, offer_expires_at=expires),
                              "offered", "system", now=now, dispatch_after=False)
        except (TransitionError, StaleVersion) as exc:  # capacity taken meanwhile, or the conversation moved
            log.info("offer_skipped", conversation_id=conv.id, reason=type(exc).__name__)
            return False
        return True

    async def sweep(self) -> int:
        """Expired offers go back to the queue; snoozes that ran out wake up; a bot that did not answer in time
        hands its conversation to its fallback team. Returns how many moved."""
        now = self.clock.now()
        moved = 0
        tenants: set[str] = set()
        for conv in await self.stores.conversations.due(now):
            comment, silent_bot = None, bots.is_overdue(conv, now)
            if conv_rules.offer_expired(conv, now):
                transition, change = (lambda c: conv_rules.return_to_queue(c, now)), "offer_expired"
            elif silent_bot:
                transition, change = (lambda c: bots.fall_back(c, now)), "transferred"
                comment = bots.fallback_comment(conv)
            else:
                transition, change = (lambda c: conv_rules.wake(c, now)), "status_changed"
            try:
                await self.change(conv, transition, change, "system", comment, now=now, dispatch_after=False)
            except (TransitionError, StaleVersion):
                continue
            if silent_bot:  # an operator's problem: counted and logged
                bot = conv.assignee.id if conv.assignee else "?"
                BOT_FALLBACKS.labels(conv.tenant_id, bot).inc()
                log.warning("bot_fell_back", conversation_id=conv.id, bot=bot, team=conv.team_id)
            moved += 1
            tenants.add(conv.tenant_id)
        for tenant_id in tenants:
            await self.dispatch(tenant_id)
        return moved


def _replaced_by(after: Conversation) -> Transition:
    return lambda _: after


def _event_assignee(assignee: Assignee | None) -> EventAssignee | None:
    return EventAssignee(kind=assignee.kind.value, id=assignee.id) if assignee else None


def opened_event_id(conversation_id: str) -> UUID:
    """The event id of a conversation's `opened` event, the same whenever it is published."""
    return uuid5(NAMESPACE_URL, f"parley:conversation:{conversation_id}:opened")


def appended_event_id(conversation_id: str, entry_id: str) -> UUID:
    """The event id of the `message_appended` event of one message's entry, the same whenever it is published."""
    return uuid5(NAMESPACE_URL, f"parley:conversation:{conversation_id}:appended:{entry_id}")
