"""What the standard journey costs, held to a budget (issue 17): a customer writes, becomes a contact, the
conversation is offered to an agent, the agent replies, the provider gets the send, the delivery comes back. The
five services run in counting mode (parley_common.round_trips): per journey and per service, database round
trips, cache round trips and Kafka records produced must stay within BUDGET — a count, not a timing, so it does
not depend on the machine's load.

Nothing polls the services while counting: progress is read from the topics, and "the system has settled" is
every consumer group of the run having committed up to the end of its topics (asked of the broker). Periodic
work (sweeps, reconcilers) is pushed beyond the test's duration, so the counts are the journeys' own.

When a change makes a journey cheaper, lower the budget to the new count (the failure message prints it); a
change that makes it dearer must say why in its commit, with the budget raised in the same commit."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from e2e_customer import AGENT, Journey
from e2e_desk import Desk
from e2e_fixtures import system_fixture
from e2e_journey import whatsapp_status
from e2e_system import SERVICES, WHATSAPP, System

from parley_common.round_trips import KINDS, read_commands, read_counts
from parley_common.topics import CONTACTS_EVENTS, CONVERSATIONS_EVENTS, OUTBOUND_MESSAGES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# The cheapest of CUSTOMERS journeys counts: on a loaded machine a consumer group may rebalance and a batch be
# delivered again (idempotent, but its round trips are spent twice); a change that adds a round trip adds it to
# every journey.
CUSTOMERS = 3
# Per journey (one inbound message, its contact, the offer, one reply sent and delivered), per service, as
# measured on 2026-12-05 for a journey whose records each arrive in a batch of their own. When two records of a
# journey share a batch it costs less (the router takes outbound's queued and sent in one go; a visibility
# projection writes two conversation events at once; outbound's thread facts of two events go in one pipeline),
# which the timing of a loaded machine decides — for all three journeys of a run alike at times — so the budget
# is the unshared count: router 26 (23 shared), outbound cache 12 (10-11 shared). A new conversation's opened and
# offered events always share a batch (one produce request).
BUDGET: dict[str, dict[str, int]] = {
    # ingest 0 → 2 database, 6 → 7 cache (issue 18: the customers' identity keys are ingest's own record in
    # MongoDB, Redis only caches them): every journey is a customer nobody knew, so its first message looks the
    # identifiers up (one find) and records them before publishing (one insert), then caches them (one script
    # call); a customer the cache knows costs one MGET and no database round trip, as the identity script did.
    # cache 7 → 4 (issue 17): a webhook's cached identities are read in its duplicate check's MGET, and its ranks
    # cached in one pipeline with its de-dup marks after publishing (adapters/cache.py): one read, one write each
    # database 2 → 1 (issue 17): identifiers the cache knows nothing of are inserted without being looked up
    # first; only an insert that meets a stored identifier reads them (adapters/identities.py)
    "ingest": {"database": 1, "cache": 4, "kafka_produced": 2},
    # contacts 9 (issue 17): the registry read with the cards (a `$lookup`), the registry insert, the card insert,
    # and the visibility projection's 6 conversation batches (shared code). The profile consumer no longer reads a
    # card without a Messenger / Instagram identity (one `find` less) and the registry is read before it is
    # written (an insert for a new customer instead of an upsert for every one): the same count, a third of the
    # database server's CPU for a new customer, one round trip less for a batch of known ones
    # contacts 9 → 5 (issue 17): the visibility projection writes a key only when its conversation, team, agent
    # or status changed — opened (queued) and offered (the agent's), not the other four batches (2 writes, 1 when
    # the two share a batch); the same in outbound (14 → 10) and media (6 → 2); 5 → 4: the router publishes the
    # two in one produce request, so they always share a batch (outbound 10 → 9, media 2 → 1)
    "contacts": {"database": 4, "cache": 0, "kafka_produced": 1},
    # router: 37 → 29 (issue 17): a contacts event's card written and read back in one findAndModify (was two
    # updates and a find); later statuses of an outbound message refresh its entry in one upsert (was an insert
    # that failed, then the upsert) and a message's first status is written with its new entry (no second
    # write); the directory cache's version checks (one per tenant now, was three) come with time and are
    # pushed out of the count like the other periodic work; 29 → 26: a key's open conversation read with its
    # pointer in one round trip (a `$lookup`; was the pointer, then the conversation), once per outbound status;
    # 26 → 24: a later status refreshes its entry and moves it on in one write (was an upsert, then a
    # findAndModify), sent and delivered; 27 → 26 database, 6 → 5 Kafka: a new customer's conversation names the
    # card its first message creates as it opens (parley_common.ids.contact_id_of_first_message), so contacts'
    # announcement of it finds it shown: no save, no `contact_changed`
    "router": {"database": 26, "cache": 3, "kafka_produced": 5},
    # outbound +1 database for broadcasts: the audience's projection of the new contact; +1 cache: an inbound
    # message asks whether it answers a broadcast message (outbound:broadcast-reply); one database round trip
    # less: an agent answering their own customer is seen to be theirs without reading the agent's teams.
    # cache 13 → 11 (issue 17): an inbound message's window and broadcast-reply lookup are one pipeline per
    # batch (was two round trips per message), a batch's conversation events one pipeline of thread facts (was
    # one HSET per event; here each of the journey's five batches brings one)
    "outbound": {"database": 9, "cache": 12, "kafka_produced": 4},
    "media": {"database": 1, "cache": 0, "kafka_produced": 0},
}
QUIET = "3600"  # seconds: periodic work that would otherwise run while the journeys are counted
COUNTING = {
    "PARLEY_COUNT_ROUND_TRIPS": "true",
    "PARLEY_ROUTER_SWEEP_INTERVAL_SECONDS": QUIET,
    "PARLEY_ROUTER_CAPACITY_RECONCILE_INTERVAL_SECONDS": QUIET,
    "PARLEY_ROUTER_OFFLINE_CHECK_INTERVAL_SECONDS": QUIET,
    "PARLEY_ROUTER_SUPERVISOR_METRICS_INTERVAL_SECONDS": QUIET,
    "PARLEY_ROUTER_DIRECTORY_CACHE_TTL_SECONDS": QUIET,  # its version checks come with time, not with messages
    "PARLEY_MEDIA_SWEEP_INTERVAL_SECONDS": QUIET,
    "PARLEY_OUTBOUND_BROADCAST_POLL_SECONDS": QUIET,
    "PARLEY_OUTBOUND_PROJECTION_CHECK_SECONDS": QUIET,  # is the cache's projection marker still there?
    "PARLEY_INSTANCE_ID": "",  # one replica of each: no peers, so no lease renewals (parley_common.dead_peers)
}


system = system_fixture("budget", overrides=COUNTING)


async def test_the_standard_journey_stays_within_its_round_trip_budget(staffed: System, infra_endpoints: dict[str, str],
                                                                      http: httpx.AsyncClient) -> None:
    system, bootstrap = staffed, infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"]
    desk = Desk(system, http)
    await desk.presence(AGENT, "online")
    # a first journey warms what each service loads once (directory, channel caches, scripts): not counted
    await standard_journey(Journey(system, http), bootstrap, system.namespace)
    journeys: list[dict[str, dict[str, float]]] = []
    commands: list[dict[str, dict[tuple[str, str], float]]] = []
    for _ in range(CUSTOMERS):  # one after another: a lone message's cost, not shared with others' batches
        await desk.presence(AGENT, "online")  # the agent stays online however slow the machine (before counting)
        await settled(bootstrap, system.namespace)
        before, commands_before = await counts(system, http)
        await standard_journey(Journey(system, http), bootstrap, system.namespace)
        after, commands_after = await counts(system, http)
        journeys.append({service: {kind: after[service][kind] - before[service][kind] for kind in KINDS}
                         for service in SERVICES})
        commands.append({service: {command: times - commands_before[service].get(command, 0)
                                   for command, times in commands_after[service].items()
                                   if times > commands_before[service].get(command, 0)} for service in SERVICES})

    cost = {service: {kind: min(journey[service][kind] for journey in journeys) for kind in KINDS}
            for service in SERVICES}
    table = "\n".join(f"  {service:9} " + "  ".join(
        f"{kind} {cost[service][kind]:3.0f} (budget {BUDGET[service][kind]}; each "
        f"{'/'.join(f'{journey[service][kind]:.0f}' for journey in journeys)})" for kind in KINDS)
        for service in SERVICES)
    cheapest = min(range(CUSTOMERS), key=lambda index: sum(sum(journeys[index][service].values())
                                                            for service in SERVICES))
    listed = "\n".join(f"  {service:9} {kind:8} {times:3.0f} {command}" for service in SERVICES
                        for (kind, command), times in sorted(commands[cheapest][service].items()))
    print(f"round trips of the standard journey:\n{table}\nby command, journey {cheapest + 1}:\n{listed}")
    over = [(service, kind) for service in SERVICES for kind in KINDS if cost[service][kind] > BUDGET[service][kind]]
    assert not over, f"over budget: {over}\nper journey:\n{table}\nby command, journey {cheapest + 1}:\n{listed}"


async def standard_journey(journey: Journey, bootstrap: str, namespace: str) -> None:
    """Inbound message → contact → conversation offered → agent reply → provider sent → delivered, waiting for
    each step on the topics and for the consumers to settle."""
    await journey.customer_writes("Hi, where is my parcel?")
    await settled(bootstrap, namespace)
    offered = [event for event in await records(bootstrap, CONVERSATIONS_EVENTS.name(namespace))
               if event["change"] == "offered" and event["external_user_id"] == journey.external_user_id]
    assert [event["assignee"]["id"] for event in offered] == [AGENT], offered
    created = [event for event in await records(bootstrap, CONTACTS_EVENTS.name(namespace))
               if event["type"] == "parley.contact.created"
               and journey.external_user_id in json.dumps(event["identities"])]
    assert len(created) == 1, created

    reply = await journey.agent_replies("It left the depot this morning.")
    assert reply.status_code == 202, reply.text
    message_id = reply.json()["message_id"]
    await settled(bootstrap, namespace)
    sent = await outbound_updates(bootstrap, namespace, "sent")
    assert message_id in sent, f"{message_id} not sent"

    status = whatsapp_status(journey.phone, sent[message_id], "delivered", int(time.time()), WHATSAPP.phone_number_id)
    assert (await journey.webhook(status)).status_code == 200
    await settled(bootstrap, namespace)
    assert message_id in await outbound_updates(bootstrap, namespace, "delivered")


async def counts(system: System, http: httpx.AsyncClient) -> tuple[
        dict[str, dict[str, float]], dict[str, dict[tuple[str, str], float]]]:
    """Each service's `parley_round_trips_total{kind}` from its /metrics, and the same by command."""
    found, by_command = {}, {}
    for service in SERVICES:
        response = await http.get(f"{system.url(service)}/metrics")
        assert response.status_code == 200, response.text
        found[service], by_command[service] = read_counts(response.text), read_commands(response.text)
    return found, by_command


async def settled(bootstrap: str, namespace: str, within: float = 60.0, group: str = "") -> None:
    """Until every consumer group of the run (whose name, past the namespace, starts with `group`) has committed up
    to the end of every partition it reads, twice in a row with the same end offsets (a consumer produces before
    it commits, so a quiet pass sees its records)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await reader.start()
    deadline, last, lagging = time.monotonic() + within, None, "nothing yet"
    try:
        while time.monotonic() < deadline:
            groups = [name for name, _ in await admin.list_consumer_groups() if name.startswith(f"{namespace}.{group}")]
            committed = {group: await admin.list_consumer_group_offsets(group) for group in groups}
            partitions = {partition for offsets in committed.values() for partition in offsets}
            ends = await reader.end_offsets(list(partitions)) if partitions else {}
            lagging = [f"{group} {partition.topic}[{partition.partition}] {meta.offset}/{ends[partition]}"
                       for group, offsets in committed.items() for partition, meta in offsets.items()
                       if meta.offset < ends[partition]]
            if not lagging and ends == last:
                return
            last = ends if not lagging else None
            await asyncio.sleep(0.3)
    finally:
        await reader.stop()
        await admin.close()
    raise AssertionError(f"the consumers did not settle within {within}s: {lagging}")


async def records(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of `topic` so far, decoded (no consumer group: reading costs the services nothing)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, number) for number in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # a consumer without a subscription
            partitions = [TopicPartition(topic, number) for number in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[dict[str, Any]] = []
        while any([await consumer.position(partition) < ends[partition] for partition in partitions]):
            batches = await consumer.getmany(timeout_ms=500)
            found += [json.loads(record.value) for batch in batches.values() for record in batch]
        return found
    finally:
        await consumer.stop()


async def outbound_updates(bootstrap: str, namespace: str, status: str) -> dict[str, str]:
    """message id → provider message id of the outbound messages that reached `status`."""
    return {event["message_id"]: event.get("provider_message_id") or ""
            for event in await records(bootstrap, OUTBOUND_MESSAGES.name(namespace)) if event["status"] == status}
