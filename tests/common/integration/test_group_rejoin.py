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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
                                         instance], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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
