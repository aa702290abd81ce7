"""Two replicas of every service (issue 18, "two of everything"), each named by its own PARLEY_INSTANCE_ID on its
own port, under the fault schedule's stream (signed webhooks and agent replies, spread over both replicas as a
load balancer would), with three agents of capacity 2 online; then one replica of every service is killed with
SIGKILL and not restarted, and the stream goes on against the survivors. Asserted from outside: every accepted
webhook on exactly one timeline once, one contact and one conversation per customer, no reply at the provider
twice, no conversation offered to two agents at once and no agent over capacity (the conversations topic and
the router's agents list, sampled), and every partition of every consumer group consumed to its end — the
survivors took over the dead replicas' partitions (on the local broker by evicting them:
parley_common.dead_peers). The long variant (`make test-long`) kills and restarts every replica in turn, twice,
before killing one of each for good."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from e2e_customer import AGENT
from e2e_desk import Desk
from e2e_provider import free_port
from e2e_system import SERVICES, Service, System, kill_hard, restart, start, stop_all, wait_ready
from fault_stream import Stream
from group_lag import group_lag

from parley_common.topics import ALL_TOPICS, CONVERSATIONS_EVENTS

AGENTS = (AGENT, "bruno", "chen")  # AGENT answers in the stream
CAPACITY = 2  # each: six slots for eight customers, so some wait in the queue
CUSTOMERS = 8
BEFORE_KILL_S = 5.0
AFTER_KILL_S = 8.0
CONSUMED_WITHIN_S = 60.0  # kill → every partition committed to its end (dead_peers: ≤ 9 + 3 + 3 s, then catch-up)


@dataclass
class TwoOfEach(System):
    """The system with a second replica of each service; `url` alternates between the live ones."""

    twins: dict[str, Service] = field(default_factory=dict)
    _turns: Iterator[int] = field(default_factory=itertools.count)

    def twin_env(self, name: str) -> dict[str, str]:
        return self.env | {f"PARLEY_{name.upper()}_PORT": str(self.twins[name].port), "PARLEY_INSTANCE_ID": "e2e-2"}

    def start_twins(self) -> None:
        """Starts the second replicas that are not running; returns when they are ready."""
        stopped = {name: twin for name, twin in self.twins.items() if twin.process is None or
                   twin.process.poll() is not None}
        for name, twin in stopped.items():
            start(twin, self.twin_env(name))
        wait_ready(System(self.namespace, self.provider, stopped, self.tmp, self.env))

    def url(self, service: str) -> str:
        live = [replica for replica in (self.services[service], self.twins[service])
                if replica.process is not None and replica.process.poll() is None]
        return live[next(self._turns) % len(live)].url


@pytest.fixture(scope="module")
def two_of_each(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoOfEach]:
    """The faults' system (conftest.py) and a second replica of each service beside it."""
    tmp = tmp_path_factory.mktemp("replicas")
    twins = {name: Service(name, free_port(), tmp / f"{name}-2.log") for name in SERVICES}
    both = TwoOfEach(system.namespace, system.provider, system.services, system.tmp, system.env, system.tokens,
                     twins=twins)
    try:
        both.start_twins()
        yield both
    finally:
        stop_all(twins)


async def staff(desk: Desk) -> None:
    """Each agent's team and capacity in one write: an agent written with the team alone has the default capacity
    (5) until the next write, and one still online from the test before is offered up to that meanwhile."""
    for login in AGENTS:
        await desk.ok("PUT", "router", f"/v1/agents/{login}", json={"teams": ["replicas"],
                                                                    "default_capacity": CAPACITY})
    await desk.team("replicas", [], offer_timeout_seconds=600)
    for login in AGENTS:
        await desk.presence(login, "online")


async def sample_capacity(desk: Desk, stop: asyncio.Event, most: dict[str, int]) -> None:
    """What the router tells a supervisor each agent holds, twice a second: never more than their capacity."""
    while not stop.is_set():
        try:
            agents = (await desk.ok("GET", "router", "/v1/agents"))["items"]
        except (httpx.HTTPError, AssertionError):  # the replica asked was just killed
            agents = []
        for agent in agents:
            if agent["login"] in AGENTS:
                held = sum(agent["active"].values())
                most[agent["login"]] = max(most.get(agent["login"], 0), held)
                assert held <= CAPACITY, f"{agent['login']} holds {held} > {CAPACITY}"
        await asyncio.sleep(0.5)


async def conversation_changes(bootstrap: str, namespace: str) -> list[dict[str, Any]]:
    """Every ConversationChanged of the namespace, each conversation's in their order (one key, one partition)."""
    consumer = AIOKafkaConsumer(CONVERSATIONS_EVENTS.name(namespace), bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=f"e2e-reader-{uuid.uuid4().hex[:8]}",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        changes = [json.loads(record.value) for records in batches.values() for record in records]
        while batches:
            batches = await consumer.getmany(timeout_ms=1000)
            changes += [json.loads(record.value) for records in batches.values() for record in records]
        return changes
    finally:
        await consumer.stop()


def assert_offered_to_one_agent_at_a_time(changes: list[dict[str, Any]]) -> int:
    """Replays each conversation's changes: while it is with an agent, no other agent is given it except by a
    transfer. Answers how many offers were seen."""
    holder: dict[str, str | None] = {}
    offers = 0
    for change in changes:
        conversation = change["conversation_id"]
        assignee = change.get("assignee") or {}
        agent = assignee.get("id") if change["status"] == "assigned" and assignee.get("kind") == "agent" else None
        previous = holder.get(conversation)
        if change["change"] == "offered":
            offers += 1
            assert previous in (None, agent), f"{conversation} offered to {agent} while {previous} held it"
        holder[conversation] = agent
    return offers


async def unconsumed(bootstrap: str, namespace: str) -> dict[str, Any]:
    """Every consumer group of the namespace → its partitions not committed to their end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="parley-tests-groups")
    await admin.start()
    try:
        groups = [group for group, _ in await admin.list_consumer_groups() if group.startswith(f"{namespace}.")]
        topics_of = {group: {partition.topic for partition in await admin.list_consumer_group_offsets(group)}
                     for group in groups}
    finally:
        await admin.close()
    partitions = {topic.name(namespace): topic.partitions for topic in ALL_TOPICS}
    behind = {}
    for group, topics in topics_of.items():
        lag = await group_lag(bootstrap, group, {topic: partitions[topic] for topic in topics if topic in partitions})
        if lag:
            behind[group] = {f"{tp.topic.removeprefix(namespace + '.')}[{tp.partition}]": n for tp, n in lag.items()}
    return behind


async def described(bootstrap: str, groups: list[str]) -> dict[str, Any]:
    """Each group's state and members' client ids, as the broker tells them (one group per call)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="parley-tests-groups")
    await admin.start()
    try:
        return {group: [(found[2], [(member[1], member[0][-4:]) for member in found[5]])
                        for response in await admin.describe_consumer_groups([group]) for found in response.groups]
                for group in groups}
    finally:
        await admin.close()


async def every_partition_consumed(bootstrap: str, namespace: str, within: float) -> float:
    started = time.monotonic()
    while behind := await unconsumed(bootstrap, namespace):
        if time.monotonic() - started > within:
            raise AssertionError(f"consumer groups behind {within}s after the kill: {behind}; "
                                 f"{await described(bootstrap, sorted(behind))}")
        await asyncio.sleep(1.0)
    return time.monotonic() - started


async def kill_the_twins(system: TwoOfEach) -> None:
    """One replica of every service killed, never restarted."""
    for twin in system.twins.values():
        await asyncio.to_thread(kill_hard, twin)


async def kill_each_in_turn(system: TwoOfEach) -> None:
    """Every replica killed and restarted in turn, the first ones and the second ones, twice; then the second
    ones killed for good."""
    await asyncio.to_thread(system.start_twins)
    for _ in range(2):
        for name in SERVICES:
            await asyncio.to_thread(kill_hard, system.services[name])
        await asyncio.sleep(3.0)
        for name in SERVICES:
            await asyncio.to_thread(restart, system, name)
        await kill_the_twins(system)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(system.start_twins)
    await kill_the_twins(system)


async def run(system: TwoOfEach, bootstrap: str, faults: Callable[[TwoOfEach], Awaitable[None]]) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        desk = Desk(system, client)
        await staff(desk)
        stream = Stream.of(system, client, customers=CUSTOMERS)
        stop = asyncio.Event()
        most: dict[str, int] = {}
        running = [asyncio.create_task(stream.run(stop)), asyncio.create_task(sample_capacity(desk, stop, most))]
        await asyncio.sleep(BEFORE_KILL_S)
        await faults(system)
        killed_at = time.monotonic()
        await asyncio.sleep(AFTER_KILL_S)
        stop.set()
        await asyncio.gather(*running)
        counts = await stream.settled()
        consumed = await every_partition_consumed(bootstrap, system.namespace, CONSUMED_WITHIN_S)
        offers = assert_offered_to_one_agent_at_a_time(await conversation_changes(bootstrap, system.namespace))
        print(f"two replicas of each, {faults.__name__}: {counts}; {offers} offers, most held {most}; every "
              f"partition consumed {time.monotonic() - killed_at:.1f}s after the last kill ({consumed:.1f}s after "
              f"the stream settled)")
        assert counts["accepted_webhooks"] > 0 and offers > 0


@pytest.mark.timeout(300)  # the system's start included: ~50 s at a load average of 10
def test_two_replicas_of_every_service_with_one_of_each_killed(two_of_each: TwoOfEach,
                                                                infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run(two_of_each, infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], kill_the_twins))


@pytest.mark.slow_soak
@pytest.mark.timeout(900)
def test_two_replicas_of_every_service_each_killed_and_restarted_in_turn(two_of_each: TwoOfEach,
                                                                         infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run(two_of_each, infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"], kill_each_in_turn))
