"""A live replica makes a dead peer's members leave its consumer groups once it can prove the peer dead, so the
partitions the dead one held are consumed again even if it never comes back; and its own members that its
consumers abandoned (see DeadPeerEvictor._evict_abandoned).

Kafka removes a member that stopped heartbeating after `session.timeout.ms` and rebalances. The local broker
(noida-db 0.2.3) never does (measured with two consumers of one group, docs/architecture.md "Known limits"): in
a stable group the survivor keeps only its own partitions, for ever; and when another member joins later, a dead
member that was the group's leader keeps the round in CompletingRebalance: the others' SyncGroup waits 10 s, is
answered REBALANCE_IN_PROGRESS, they join the same generation again, and again. A LeaveGroup sent on the dead
member's behalf ends both: the round restarts among the live members at once (0.1 s measured).

The proof: every replica renews a lease — its client id `parley-<service>@<instance>` and the time — in its
service's own database every CHECK_S. A member of one of our groups whose client id names another replica of
this service is dead when that replica's lease was last renewed more than DEAD_AFTER_S ago, or when it has no
lease and this replica has watched it for DEAD_AFTER_S. A live replica evicted by mistake (its event loop stalled
for longer than that) only joins again; its uncommitted records are redelivered, and consumers are idempotent.
Two live processes with one instance id cannot tell their members apart: the lease shows it (another process
renewed it last), it is logged as an error, and neither evicts members with that client id meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from parley_common.rejoin import consumer_groups, leave_as, members_of
from parley_common.tasks import running

log = structlog.get_logger(__name__)
CHECK_S = 3.0  # lease renewal and group check; Kafka's heartbeat interval is 3 s
DEAD_AFTER_S = 9.0  # a lease this old proves its replica dead; Kafka's session timeout is 10 s
LEASE_KEPT_S = 24 * 3600  # the database forgets a dead replica's lease after a day


class ReplicaLeases:
    """The replicas' last signs of life, in the collection `replica_leases` of the service's own database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], client_id: str,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._leases = db["replica_leases"]
        self.client_id = client_id
        self._now = now
        self._holder = uuid.uuid4().hex  # this process, to tell another one renewing the same lease

    async def ensure_indexes(self) -> None:
        await self._leases.create_index("renewed_at", expireAfterSeconds=LEASE_KEPT_S)

    async def renew(self) -> bool:
        """Renews this replica's lease; False when another live process renewed it last — two replicas started
        with one instance id, which would make each other's members leave."""
        now = self._now()
        before = await self._leases.find_one_and_update(
            {"_id": self.client_id}, {"$set": {"renewed_at": now, "holder": self._holder}}, upsert=True)
        return (before is None or before.get("holder") in (None, self._holder)
                or _aware(before["renewed_at"]) < now - timedelta(seconds=DEAD_AFTER_S))

    async def stale(self, client_ids: list[str]) -> tuple[set[str], set[str]]:
        """(those whose lease is older than DEAD_AFTER_S, those without one) among `client_ids`."""
        renewed = {doc["_id"]: doc["renewed_at"] async for doc in
                   self._leases.find({"_id": {"$in": client_ids}}, {"renewed_at": 1})}
        oldest_alive = self._now() - timedelta(seconds=DEAD_AFTER_S)
        return ({client for client, at in renewed.items() if _aware(at) < oldest_alive},
                set(client_ids) - set(renewed))


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # the driver hands back naive UTC unless told otherwise


class DeadPeerEvictor:
    """Renews this replica's lease and evicts dead peers' members from `broker`'s groups, every CHECK_S."""

    def __init__(self, broker: KafkaBroker, bootstrap_servers: str, leases: ReplicaLeases,
                 client_options: dict[str, Any], clock: Callable[[], float] = time.monotonic) -> None:
        self._broker = broker
        self._bootstrap = bootstrap_servers
        self._leases = leases
        self._options = client_options
        self._clock = clock
        self._peer_prefix = leases.client_id.split("@", 1)[0] + "@"
        self._unleased_since: dict[str, float] = {}  # peer client id → when first seen here without a lease
        self._abandoned_before: set[tuple[str, str]] = set()  # (group, member id) of ours unused last round
        self._sole_before = True  # no other process renewed this replica's lease before the last round
        self._shared_logged = False

    async def check(self, admin: AIOKafkaAdminClient) -> int:
        """One round: renew, then evict the members of proven-dead peers and this replica's own abandoned
        members; answers how many were evicted."""
        sole = await self._leases.renew()
        # Once, a restarted replica sees its dead predecessor's renewal; twice running, another live process.
        if not sole and not self._sole_before and not self._shared_logged:
            log.error("replica_instance_id_shared", client_id=self._leases.client_id,
                      fix="give every live replica its own PARLEY_INSTANCE_ID")
        self._shared_logged = not sole and (self._shared_logged or not self._sole_before)
        self._sole_before = sole
        peers: dict[str, list[tuple[str, str]]] = {}  # client id → its (group, member id)s
        abandoned: set[tuple[str, str]] = set()
        in_use = own_member_ids(self._broker)
        for group in consumer_groups(self._broker):
            for member_id, client_id in await members_of(admin, group):
                if client_id == self._leases.client_id:
                    if member_id not in in_use:
                        abandoned.add((group, member_id))
                elif client_id.startswith(self._peer_prefix):
                    peers.setdefault(client_id, []).append((group, member_id))
        evicted = await self._evict_abandoned(admin, abandoned if sole else set())  # another's, if shared
        if not peers:
            self._unleased_since.clear()
            return evicted
        stale, unleased = await self._leases.stale(sorted(peers))
        now = self._clock()
        self._unleased_since = {peer: self._unleased_since.get(peer, now) for peer in unleased}
        dead = stale | {peer for peer, since in self._unleased_since.items() if now - since >= DEAD_AFTER_S}
        for peer in sorted(dead):
            for group, member_id in peers[peer]:
                evicted += await leave_as(admin, group, [member_id])
                log.warning("dead_peer_evicted", peer=peer, group=group,
                            proof="lease expired" if peer in stale else "no lease")
            self._unleased_since.pop(peer, None)
        return evicted

    async def _evict_abandoned(self, admin: AIOKafkaAdminClient, abandoned: set[tuple[str, str]]) -> int:
        """Members with this replica's own client id that none of its consumers uses any more, seen so in two
        rounds running (a consumer may be between a new member id and storing it). aiokafka drops its member id
        when a commit meets ILLEGAL_GENERATION (after any rebalance it missed) and joins as a new member; Kafka
        expires the old one, the local broker keeps it, and as the group's leader it stalls every round."""
        evicted = 0
        for group, member_id in sorted(abandoned & self._abandoned_before):
            evicted += await leave_as(admin, group, [member_id])
            log.warning("abandoned_member_evicted", group=group)
        self._abandoned_before = abandoned
        return evicted

    async def run(self) -> None:
        """Until cancelled; a failed round is logged and the next one tries again."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap,
                                    client_id=f"{self._leases.client_id}-peers", **self._options)
        await admin.start()
        try:
            while True:
                try:
                    await self.check(admin)
                except Exception as exc:  # noqa: BLE001 - the broker or database away: the next round retries
                    log.warning("dead_peer_check_failed", error=type(exc).__name__)
                await asyncio.sleep(CHECK_S)
        finally:
            await admin.close()


def own_member_ids(broker: KafkaBroker) -> set[str]:
    """The member ids `broker`'s consumers hold now (aiokafka's coordinator; aiokafka is pinned)."""
    consumers = [consumer for subscriber in broker.subscribers  # a concurrent subscriber holds a subgroup
                 for consumer in (getattr(subscriber, "consumer", None), *getattr(subscriber, "consumer_subgroup", ()))]
    coordinators = (getattr(consumer, "_coordinator", None) for consumer in consumers)
    return {member_id for coordinator in coordinators if (member_id := getattr(coordinator, "member_id", ""))}


@contextlib.asynccontextmanager
async def evicting_dead_peers(broker: KafkaBroker, bootstrap_servers: str, leases: ReplicaLeases | None,
                              client_options: dict[str, Any]) -> AsyncIterator[None]:
    """While inside: this replica's lease is renewed and dead peers are evicted. Entered before the broker
    starts: joining may itself wait on a dead leader. Nothing for an unnamed replica (it has no peers to tell
    apart) or one without a database."""
    if leases is None or "@" not in leases.client_id or not consumer_groups(broker):
        yield
        return
    with contextlib.suppress(Exception):  # best effort: a database away at start only delays the first lease
        await leases.ensure_indexes()
    async with running(DeadPeerEvictor(broker, bootstrap_servers, leases, client_options).run()):
        yield
