"""Background upkeep of the router: capacity slots reconciled with the stored conversations, agents who went
offline (explicitly or by heartbeat expiry) handing back what they cannot serve, and the inbox tab counters
checked against a recount.

Both run on every replica on their own interval; a short Redis lease lets one replica do each round."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import structlog

from parley_common.runtime import Runtime
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.adapters.conversations import StaleVersion
from parley_router.domain import conversation as conv_rules
from parley_router.domain.assignment import DEFAULT_CAPACITY, Team
from parley_router.domain.capacity import (
    SlotKey,
    apply_changes,
    by_slot,
    change_windows,
    doubted,
    over_capacity,
    repairs,
)
from parley_router.domain.conversation import Conversation, TransitionError
from parley_router.domain.offline import AWAY_COMMENT, OFFLINE_COMMENT, offline_move
from parley_router.domain.tab_counts import Bucket, Suspect, confirmed, suspects
from parley_router.handlers.engine import CHANNEL_TYPES, Engine
from parley_router.settings import RouterSettings

log = structlog.get_logger(__name__)
MOVE_ATTEMPTS = 3  # a conversation changed meanwhile is re-read and decided again
# A round between full reads reads the conversations stored since the last read began, less this: a replica whose
# clock is behind, or whose write took long to land (a database stall), stamps its write earlier than it was stored.
# One beyond it only waits for the next full read, while every second of margin is read again at every round (at 100
# conversations stored a second, 100 more read).
CHANGE_MARGIN = timedelta(seconds=5)


@dataclass
class Healed:
    removed: int = 0
    restored: int = 0


@dataclass
class HeldView:
    """A tenant's held conversations as this replica's rounds read them: the last full read, brought up to date with
    the conversations stored since (`read_from`: when the last read began, by this replica's clock)."""

    holders: dict[str, SlotKey]
    read_from: datetime
    full_read_at: float  # time.monotonic()
    # how many conversations the tenant's last round read; after a full read the held ones, so the first round
    # between reads chooses its windows as if every held conversation had changed
    read_last_round: int


class Upkeep:
    def __init__(self, engine: Engine, audit: CapacityAudit, grace_seconds: float,
                 full_audit_seconds: float) -> None:
        self.engine = engine
        self.audit = audit
        self.grace_ms = int(grace_seconds * 1000)
        self.full_audit_seconds = full_audit_seconds
        self._views: dict[str, HeldView] = {}  # tenant → its held conversations as last read
        self._suspects: dict[str, dict[Bucket, Suspect]] = {}  # tenant → counters the last repair doubted

    # --- capacity -------------------------------------------------------------------------------------------
    async def reconcile_capacity(self) -> Healed:
        """Make every agent's slot sets agree with MongoDB (all tenants)."""
        total = Healed()
        for tenant_id in await self.audit.tenants():
            healed = await self.reconcile_tenant(tenant_id)
            total.removed += healed.removed
            total.restored += healed.restored
        return total

    async def reconcile_tenant(self, tenant_id: str) -> Healed:
        """Make the tenant's slot sets agree with MongoDB. A full round reads every held conversation; the rounds
        between read those stored since the last round, and read again by id the ones their plan would remove or
        put back, so a repair always rests on a read made after the slots' (see `repairs`): a view behind the
        truth can only delay a repair to the next full round, never make a wrong one."""
        # the cutoff is fixed before anything is read: a slot stamped after it may have its save in flight and
        # is left alone; one stamped before it had its save done (or failed and released) before the reads. A
        # conversation released after the reads began is not put back (it may have been read as held just before)
        started = await self.audit.server_time_ms()
        cutoff = started - self.grace_ms
        logins = set(await self.audit.directory_logins(tenant_id))
        slots = await self.audit.slots(tenant_id, sorted(logins), CHANNEL_TYPES)  # Redis first, then MongoDB
        holders, full = await self._read_held(tenant_id)
        extra = {login for login, _ in holders.values()} - logins  # holders router has no profile for
        if extra:
            slots |= await self.audit.slots(tenant_id, sorted(extra), CHANNEL_TYPES)
            holders, full_again = await self._read_held(tenant_id)
            full = full or full_again
        planned = repairs(slots, by_slot(holders))
        if not full:
            if doubtful := doubted(planned):
                apply_changes(holders, await self.audit.holders_of(tenant_id, sorted(doubtful)))
                planned = repairs(slots, by_slot(holders))
            # a full round heals every set, also to prune the take stamps of slots released meanwhile
            planned = [repair for repair in planned if repair.stale or repair.missing]
        healing = await self.audit.heal(tenant_id, planned, cutoff, read_since_ms=started)
        healed = Healed()
        agents = await self.engine.cache.agents(tenant_id)
        for repair, removed, restored, size in healing:
            healed.removed += len(removed)
            healed.restored += len(restored)
            if removed or restored:
                log.warning("capacity_healed", tenant_id=tenant_id, login=repair.login,
                            channel_type=repair.channel_type, removed=removed, restored=restored)
            agent = agents.get(repair.login)
            over = over_capacity(size, agent.max_for(repair.channel_type) if agent else DEFAULT_CAPACITY)
            if over:
                log.warning("capacity_overrun_found", tenant_id=tenant_id, login=repair.login,
                            channel_type=repair.channel_type, over_by=over)
        if healed.removed:
            await self.engine.dispatch(tenant_id)  # freed slots may serve the queue
        return healed

    async def _read_held(self, tenant_id: str) -> tuple[dict[str, SlotKey], bool]:
        """The tenant's held conversations (conversation id → slot) and whether they were all read now (a full
        read: the first round, and once every `full_audit_seconds`) rather than brought up to date."""
        began, view = datetime.now(UTC), self._views.get(tenant_id)
        if view is None or time.monotonic() - view.full_read_at >= self.full_audit_seconds:
            full_read_at = time.monotonic()
            holders = await self.audit.holders(tenant_id)
            view = self._views[tenant_id] = HeldView(holders, began, full_read_at, read_last_round=len(holders))
            return view.holders, True
        changed = await self.audit.changed_since(tenant_id, view.read_from - CHANGE_MARGIN, began,
                                                 change_windows(view.read_last_round))
        apply_changes(view.holders, changed)
        view.read_from, view.read_last_round = began, len(changed)
        return view.holders, False

    # --- agents going offline or away -----------------------------------------------------------------------
    async def agent_stepped_away(self, tenant_id: str, login: str, *, away: bool = False) -> int:
        """`login` went offline, or only `away` (finishing what they accepted): their offers back to the queue at
        once; accepted conversations too when offline and their team says so. Returns how many conversations
        moved; the queue is dispatched afterwards."""
        teams = await self.engine.cache.teams(tenant_id)
        moved = 0
        for conv in await self.engine.stores.conversations.active_of_agent(tenant_id, login):
            moved += await self._hand_back(conv, login, teams, away)
        if moved:
            await self.engine.dispatch(tenant_id)
        return moved

    async def _hand_back(self, conv: Conversation, login: str, teams: dict[str, Team], away: bool) -> int:
        current: Conversation | None = conv
        for _ in range(MOVE_ATTEMPTS):
            if current is None:
                return 0
            team = teams.get(current.team_id or "")
            move = offline_move(current, login, not away and team is not None and team.requeue_on_offline)
            if move is None:
                return 0
            now = self.engine.clock.now()
            try:
                await self.engine.change(current, partial(conv_rules.return_to_queue, now=now), move.value,
                                         "system", AWAY_COMMENT if away else OFFLINE_COMMENT, now=now,
                                         dispatch_after=False)
                return 1
            except StaleVersion:
                current = await self.engine.stores.conversations.get(conv.tenant_id, conv.id)
            except TransitionError:
                return 0
        log.warning("offline_hand_back_gave_up", conversation_id=conv.id, login=login)
        return 0

    async def check_offline(self) -> int:
        """Agents believed online whose heartbeat expired: handle them as gone offline. Returns moved count."""
        presence = self.engine.stores.presence
        moved = 0
        for tenant_id in await presence.tenants_with_online_agents():
            expired = await presence.expired_logins(tenant_id)
            for login in expired:
                moved += await self.agent_stepped_away(tenant_id, login)
            # only after the hand-back: a crash before this line makes the next check do it again
            await presence.forget_expired(tenant_id, expired)
            await presence.forget_tenant_if_empty(tenant_id)
        return moved

    # --- tab counters -----------------------------------------------------------------------------------------
    async def repair_tab_counts(self) -> int:
        """Set right the tab counters that missed a change (the process died between a save and its add, or the
        add failed): a tenant without counters (conversations stored before they existed) gets them from a
        recount at once; a counter gets its recount when two repairs in a row found it wrong the same way with
        no change in between. Returns how many counters were set."""
        counters = self.engine.stores.conversations.counters
        fixed = 0
        for tenant_id in await counters.tenants():
            before = await counters.of_tenant(tenant_id)
            truth, arrived = await counters.recount(tenant_id)
            after = await counters.of_tenant(tenant_id)
            found = suspects(before, truth, after)
            fixes = found if not before and not after else confirmed(self._suspects.get(tenant_id, {}), found)
            self._suspects[tenant_id] = found
            for bucket, suspect in fixes.items():
                if await counters.correct(bucket, suspect.seq, suspect.truth, arrived.get(bucket)):
                    fixed += 1
                    log.warning("tab_count_repaired", tenant_id=tenant_id, status=bucket.status,
                                counted=after[bucket].n if bucket in after else None, truth=suspect.truth)
        return fixed

    # --- scheduling -----------------------------------------------------------------------------------------
    async def run_forever(self, settings: RouterSettings) -> None:
        await asyncio.gather(
            _every(settings.capacity_reconcile_interval_seconds, "capacity", self.audit, self.reconcile_capacity),
            _every(settings.offline_check_interval_seconds, "offline", self.audit, self.check_offline),
            _every(settings.tab_counts_repair_interval_seconds, "tab_counts", self.audit, self.repair_tab_counts))


def build_upkeep(runtime: Runtime, engine: Engine, settings: RouterSettings) -> Upkeep:
    return Upkeep(engine, engine.stores.audit, settings.capacity_reconcile_grace_seconds,
                  settings.capacity_full_audit_interval_seconds)


async def _every(interval: float, name: str, audit: CapacityAudit, work: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            if await audit.try_lead(name, interval * 0.8):
                await work()
        except Exception:  # upkeep must survive a passing database or cache error
            log.exception("upkeep_failed", work=name)
