"""The proof a replica is dead (its lease in the database), and the eviction of a member its own consumer
abandoned, on the real database and broker (parley_common.dead_peers)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.dead_peers import DEAD_AFTER_S, DeadPeerEvictor, ReplicaLeases
from parley_common.kafka import EventPublisher, make_broker
from parley_common.rejoin import members_of
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_PREFERENCES

CLIENT = "parley-tests@one"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_replica_is_dead_when_its_lease_is_older_than_the_bound_or_missing(
        mongo: AsyncMongoClient[Any], infra_settings: InfraSettings) -> None:
    clock = Clock()
    db = mongo[infra_settings.database_name("tests")]
    await ReplicaLeases(db, "parley-tests@gone", clock).renew()
    clock.now += timedelta(seconds=DEAD_AFTER_S - 1)
    await ReplicaLeases(db, "parley-tests@alive", clock).renew()
    clock.now += timedelta(seconds=2)

    stale, unleased = await ReplicaLeases(db, CLIENT, clock).stale(
        ["parley-tests@gone", "parley-tests@alive", "parley-tests@never"])

    assert stale == {"parley-tests@gone"}
    assert unleased == {"parley-tests@never"}


async def test_two_live_processes_renewing_one_lease_are_told_they_share_an_instance_id(
        mongo: AsyncMongoClient[Any], infra_settings: InfraSettings) -> None:
    clock = Clock()
    db = mongo[infra_settings.database_name("tests")]
    first, second = ReplicaLeases(db, CLIENT, clock), ReplicaLeases(db, CLIENT, clock)

    assert await first.renew()
    assert await first.renew()
    clock.now += timedelta(seconds=1)
    assert not await second.renew()  # the first renewed it a second ago
    clock.now += timedelta(seconds=DEAD_AFTER_S + 1)
    assert await first.renew()  # the second's renewal is stale: a restarted replica's predecessor, say


async def test_a_member_its_own_consumer_abandoned_is_made_to_leave(
        kafka_topics: InfraSettings, mongo: AsyncMongoClient[Any]) -> None:
    """What aiokafka does when a commit meets ILLEGAL_GENERATION: forget the member id and join as a new member.
    The old member stays in the group (the local broker for ever, Kafka for a session timeout)."""
    settings = kafka_topics
    broker = make_broker(settings.kafka_bootstrap, CLIENT)
    group = f"{settings.namespace}.abandoned"

    async def handle(event: Any) -> None:
        return None

    consume_group(broker, ConsumerGroup("abandoned", (Reads(INBOUND_PREFERENCES, handle),)),
                  namespace=settings.namespace, publisher=EventPublisher(broker, settings.namespace), service="tests",
                  channels=None)
    leases = ReplicaLeases(mongo[settings.database_name("tests")], CLIENT)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await broker.start()
    await admin.start()
    try:
        coordinator = broker.subscribers[0].consumer._coordinator  # type: ignore[attr-defined, union-attr]
        abandoned = coordinator.member_id
        coordinator.reset_generation()
        for _ in range(150):  # 30 s: joined again under a new id, the old one still listed
            if coordinator.member_id not in ("", abandoned) and len(await members_of(admin, group)) == 2:
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail(f"no second member: {await members_of(admin, group)}")
        evictor = DeadPeerEvictor(broker, settings.kafka_bootstrap, leases, {})

        assert await evictor.check(admin) == 0  # seen once: it may be a consumer between two ids
        assert await evictor.check(admin) == 1

        assert [member for member, _ in await members_of(admin, group)] == [coordinator.member_id]
    finally:
        await admin.close()
        await broker.stop()
