"""A consumer killed with SIGKILL (no LeaveGroup) and restarted is back at work within a bound, on the broker the
tests run against. It used to wait for the broker to expire the dead member, which the local broker never does:
the restarted router, contacts and media sat in a join loop (issue 18). Now a replica named by PARLEY_INSTANCE_ID
makes its dead predecessor's members leave before it joins (parley_common.rejoin)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from group_lag import group_lag

from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

MEMBER = Path(__file__).with_name("group_member.py")
JOINED_WITHIN_S = 10.0  # the restarted process starts to join → it has its partitions (measured 0.2-1.4 s)
STARTED_WITHIN_S = 60.0  # the process's imports: seconds, more on a loaded machine


class Member:
    def __init__(self, settings: InfraSettings, instance: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(MEMBER), settings.kafka_bootstrap, settings.namespace,
                                         instance, settings.mongo_uri],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line.strip())

    def wait_for(self, line: str, within: float) -> float:
        """Seconds until the member printed `line`; fails after `within`."""
        started = time.monotonic()
        while line not in self.seen:
            if time.monotonic() - started > within:
                pytest.fail(f"no {line!r} within {within}s; saw {self.seen}")
            time.sleep(0.05)
        return time.monotonic() - started

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def members(kafka_topics: InfraSettings) -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for member in started:
        member.kill()


async def publish(settings: InfraSettings, *ids: str) -> None:
    broker = make_broker(settings.kafka_bootstrap, "rejoin-test")
    await broker.connect()
    try:
        publisher = EventPublisher(broker, settings.namespace)
        now = datetime.now(UTC)
        for key in ids:  # each its own customer, so its own partition key
            await publisher.publish(MessageReceived(
                occurred_at=now, tenant_id="acme", correlation_id=key, channel_id="wa-main", external_user_id=key,
                channel_type="whatsapp", customer=Customer(wa_id=key), provider_message_id=key,
                provider_timestamp=now, received_at=now, parts=(TextPart(text="hi"),)), INBOUND_MESSAGES)
    finally:
        await broker.stop()


def test_a_consumer_killed_and_restarted_is_back_at_work_within_the_bound(
        kafka_topics: InfraSettings, members: list[Member]) -> None:
    members.append(Member(kafka_topics, "replica-a"))
    members[0].wait_for("started", 60)
    asyncio.run(publish(kafka_topics, "before"))
    members[0].wait_for("got before", 30)

    members[0].kill()
    members.append(Member(kafka_topics, "replica-a"))
    members[1].wait_for("joining", STARTED_WITHIN_S)
    joined = members[1].wait_for("started", JOINED_WITHIN_S)
    asyncio.run(publish(kafka_topics, "after"))
    members[1].wait_for("got after", 30)
    print(f"rejoined {joined:.2f}s after starting to join")


# Two replicas of one consumer (issue 18, "two of everything"). On Kafka the session timeout (10 s) hands a dead
# member's partitions to the survivor; the local broker never expires it, so the survivor evicts it once its
# lease in the database is DEAD_AFTER_S old (parley_common.dead_peers): ≤ 9 s + a check (3 s) + the survivor's
# next heartbeat (3 s).
TAKEOVER_WITHIN_S = 40.0


def every_partition_consumed(settings: InfraSettings, within: float) -> float:
    """Publishes one record per key until every partition of the inbound topic has some, then waits until the
    group `rejoin` has committed every partition to its end; answers the seconds that took."""
    topics = {INBOUND_MESSAGES.name(settings.namespace): INBOUND_MESSAGES.partitions}
    asyncio.run(publish(settings, *(f"key-{uuid.uuid4().hex[:8]}" for _ in range(4 * INBOUND_MESSAGES.partitions))))
    started = time.monotonic()
    while lag := asyncio.run(group_lag(settings.kafka_bootstrap, f"{settings.namespace}.rejoin", topics)):
        if time.monotonic() - started > within:
            pytest.fail(f"partitions not consumed within {within}s: {lag}")
        time.sleep(0.5)
    return time.monotonic() - started


def two_replicas(settings: InfraSettings, members: list[Member]) -> None:
    """Replica a at work, then replica b started beside it: b has its share once the group rebalanced (a
    learns of it at its next heartbeat, every 3 s)."""
    members.append(Member(settings, "replica-a"))
    members[0].wait_for("started", STARTED_WITHIN_S)
    members.append(Member(settings, "replica-b"))
    members[1].wait_for("joining", STARTED_WITHIN_S)
    shared = members[1].wait_for("started", TAKEOVER_WITHIN_S)
    consumed = every_partition_consumed(settings, TAKEOVER_WITHIN_S)
    print(f"a second replica had its partitions {shared:.2f}s after starting to join; every partition consumed "
          f"{consumed:.1f}s after the records")


def test_two_replicas_share_the_partitions_and_a_survivor_takes_over_a_killed_peers(
        kafka_topics: InfraSettings, members: list[Member]) -> None:
    two_replicas(kafka_topics, members)
    assert any(line.startswith("got ") for line in members[0].seen), "replica a consumed nothing"
    assert any(line.startswith("got ") for line in members[1].seen), "replica b consumed nothing"

    members[0].kill()  # and never restarted: replica b must take its partitions
    took = every_partition_consumed(kafka_topics, TAKEOVER_WITHIN_S)
    print(f"the survivor consumed every partition {took:.1f}s after the records were published")


def test_a_replica_killed_and_restarted_beside_another_is_back_at_work(
        kafka_topics: InfraSettings, members: list[Member]) -> None:
    two_replicas(kafka_topics, members)
    members[0].kill()
    members.append(Member(kafka_topics, "replica-a"))
    members[2].wait_for("joining", STARTED_WITHIN_S)
    # Beside a live replica the round may also wait for a member the survivor abandoned when its commit met
    # the new generation (parley_common.dead_peers evicts it in two checks): measured 3-9 s.
    joined = members[2].wait_for("started", TAKEOVER_WITHIN_S)
    took = every_partition_consumed(kafka_topics, TAKEOVER_WITHIN_S)
    print(f"restarted replica joined {joined:.2f}s after starting to join; every partition consumed {took:.1f}s")
