"""A replica restarted after a crash takes its partitions back at once: before its consumers join, it makes the
members its dead predecessor left in its groups leave (LeaveGroup on their behalf).

A process killed with SIGKILL never sends LeaveGroup. Kafka expires its members after `session.timeout.ms`
(10 s); the local broker (noida-db 0.2.3) never does: the dead leader of a group kept every new member in a join
loop (SyncGroup answered "rebalance in progress" each 10 s, measured for 25 minutes), and a surviving replica
never got the dead one's partitions (one that never comes back: parley_common.dead_peers). A replica knows
its predecessor by name: every consumer's client id carries
the replica's PARLEY_INSTANCE_ID (stable across restarts: the pod's name), so members with that client id, found
before this process joins, are the dead predecessor's. Static membership (KIP-345) would do the same on Kafka,
but noida-db gives a restarted static member another member's partitions (measured), leaving some unconsumed."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance
from aiokafka.protocol.group import LeaveGroupRequest
from faststream.kafka import KafkaBroker

log = structlog.get_logger(__name__)
TAKEOVER_TIMEOUT_S = 10.0


def rejoin_on_empty_assignment() -> None:
    """A member that joined while the leader was assigning gets an empty SyncGroup answer from the local broker
    (Kafka answers such a member REBALANCE_IN_PROGRESS, or gives it an assignment with no partitions). aiokafka
    0.14 cannot decode empty bytes: the consumer's coordination task died and the process never finished
    starting (two processes started together, measured; the router and outbound run several consumers of one
    group in a process). Treated as "join again" instead; aiokafka is pinned."""
    original = getattr(CoordinatorGroupRebalance.perform_group_join, "__wrapped__",
                       CoordinatorGroupRebalance.perform_group_join)

    @functools.wraps(original)
    async def join_again_when_empty(self: CoordinatorGroupRebalance) -> Any:
        joined = await original(self)
        if joined is not None and not joined[1]:
            log.info("empty_assignment_rejoining", group=self.group_id)
            return None  # aiokafka waits retry_backoff_ms and joins again
        return joined

    CoordinatorGroupRebalance.perform_group_join = join_again_when_empty


def rejoin_on_empty_protocol() -> None:
    """The local broker may elect a member leader with an empty assignment protocol in its JoinGroup answer (seen
    once in `make test`, in a router starting several consumers of one group together; Kafka always names the
    protocol the group chose). aiokafka 0.14 asserted on it, the consumer's start failed and the service exited.
    Treated as "join again" instead, as an empty assignment is; aiokafka is pinned."""
    original = getattr(CoordinatorGroupRebalance._on_join_leader, "__wrapped__",
                       CoordinatorGroupRebalance._on_join_leader)

    @functools.wraps(original)
    async def join_again_without_protocol(self: CoordinatorGroupRebalance, response: Any) -> Any:
        if not response.group_protocol:
            log.info("empty_protocol_rejoining", group=self.group_id)
            return None  # perform_group_join returns None: aiokafka waits retry_backoff_ms and joins again
        return await original(self, response)

    CoordinatorGroupRebalance._on_join_leader = join_again_without_protocol


def replica_client_id(service: str, instance_id: str) -> str:
    """The client id of a replica's Kafka clients: `parley-<service>`, plus `@<instance>` when named."""
    return f"parley-{service}@{instance_id}" if instance_id else f"parley-{service}"


async def leave_for_dead_predecessor(broker: KafkaBroker, bootstrap_servers: str, client_id: str,
                                     **client_options: Any) -> int:
    """Before `broker` starts: make every member of its consumers' groups whose client id is `client_id` (this
    replica's, see `replica_client_id`) leave; `client_options`: connections.kafka_client_options. Returns how
    many left. Best effort: a failure is logged and the
    consumers join as they would have (the broker may still expire the dead members itself)."""
    if "@" not in client_id:
        return 0  # an unnamed replica cannot tell its predecessor from its peers
    groups = consumer_groups(broker)
    if not groups:
        return 0
    try:
        return await asyncio.wait_for(_leave(bootstrap_servers, client_id, groups, client_options), TAKEOVER_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - never keeps the service from starting
        log.warning("predecessor_leave_failed", error=type(exc).__name__, groups=len(groups))
        return 0


async def _leave(bootstrap_servers: str, client_id: str, groups: list[str], client_options: dict[str, Any]) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=f"{client_id}-takeover",
                                **client_options)
    await admin.start()
    left = 0
    try:
        for group in groups:
            dead = [member_id for member_id, member_client in await members_of(admin, group)
                    if member_client == client_id]
            if dead:
                left += await leave_as(admin, group, dead)
                log.info("predecessor_left_group", group=group, members=len(dead))
    finally:
        await admin.close()
    return left


def consumer_groups(broker: KafkaBroker) -> list[str]:
    """The groups `broker`'s subscribers consume in."""
    return sorted({group for subscriber in broker.subscribers if (group := getattr(subscriber, "group_id", None))})


async def members_of(admin: AIOKafkaAdminClient, group: str) -> list[tuple[str, str]]:
    """(member id, client id) of each member of `group`. One group per DescribeGroups: noida-db 0.2.3 answers
    several with a malformed frame."""
    return [(member[0], member[1]) for response in await admin.describe_consumer_groups([group])
            for described in response.groups  # (error, group, state, protocol type, protocol, members, ...)
            for member in described[5]]  # (member id, client id, client host, metadata, assignment)


async def leave_as(admin: AIOKafkaAdminClient, group: str, member_ids: list[str]) -> int:
    """LeaveGroup on behalf of `member_ids` of `group`; the group rebalances among the members left."""
    if not member_ids:
        return 0
    coordinator = await admin.find_coordinator(group)
    for member_id in member_ids:  # the admin client has no call for it; aiokafka is pinned
        await admin._send_request_to_node(coordinator, LeaveGroupRequest(group, member_id))
    return len(member_ids)
