"""What a kill -9 of the local database or broker must not do to the services' clients.

The database's kill -9 loses no acknowledged write of ours. Consumers commit an offset once the write is
acknowledged, so a write the database loses after acknowledging it is a message lost for good; every service's
client asks for journaled majority writes (parley_common.mongo.DURABLE_WRITES). Without them the local database
lost the last ~15 ms of acknowledged writes on every kill -9 measured (10-21 of four writers' updates, five kills
of five: docs/architecture.md). The local server now writes every commit through to the OS
(deploy/local/mongo_server.py), so even a write without `j` survives its kill -9: the second test holds the local
server to that, the first the services' write concern.

The broker's kill -9 does not stop our producers: the local broker forgets an idempotent producer's last
sequence numbers, and aiokafka alone then has every later record to that partition refused as out of order
(measured: every time, for ever); our publisher takes a new producer id (parley_common.idempotence)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from fault_servers import kill_server, local_server, start_again, wait_for_snapshot_of
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, make_broker
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES

WRITERS = 4
WRITING_S = 2.0


async def _write_until_refused(collection: AsyncCollection[dict[str, object]], writer: int,
                               acknowledged: list[str], killed: asyncio.Event) -> None:
    for number in itertools.count():
        if killed.is_set():
            return
        document_id = f"{writer}-{number}"
        try:
            await collection.update_one({"_id": document_id}, {"$set": {"n": number}}, upsert=True)
        except PyMongoError:  # the server is gone
            return
        acknowledged.append(document_id)


async def _write_while_killed(endpoints: dict[str, str], database: str, **write_concern: Any) -> tuple[int, int]:
    """Answers (writes acknowledged, acknowledged writes missing after the restart); `write_concern` replaces the
    services' (DURABLE_WRITES)."""
    server = local_server(endpoints, "mongo")
    client = mongo_client(endpoints["PARLEY_MONGO_URI"], "parley-durability-test", **write_concern)
    collection = client[database]["writes"]
    acknowledged: list[str] = []
    killed = asyncio.Event()
    try:
        writing = [asyncio.create_task(_write_until_refused(collection, writer, acknowledged, killed))
                   for writer in range(WRITERS)]
        await asyncio.sleep(WRITING_S)
        await asyncio.to_thread(kill_server, server)
        killed.set()
        await asyncio.gather(*writing)
    finally:
        await client.close()
        await asyncio.to_thread(start_again, server)
    client = mongo_client(endpoints["PARLEY_MONGO_URI"], "parley-durability-test")
    try:
        stored = {doc["_id"] async for doc in client[database]["writes"].find({}, {"_id": 1})}
        await client.drop_database(database)
    finally:
        await client.close()
    return len(acknowledged), len(set(acknowledged) - stored)


def test_a_kill_9_of_the_database_loses_no_write_it_acknowledged(infra_endpoints: dict[str, str]) -> None:
    acknowledged, lost = asyncio.run(_write_while_killed(infra_endpoints, f"durability_{uuid.uuid4().hex[:10]}"))
    print(f"{acknowledged} writes acknowledged, {lost} of them lost by the kill -9")
    assert acknowledged > 0
    assert lost == 0, f"{lost} of {acknowledged} acknowledged writes lost"


def test_the_local_database_writes_every_commit_through_so_a_kill_9_loses_no_unjournaled_write(
        infra_endpoints: dict[str, str]) -> None:
    acknowledged, lost = asyncio.run(_write_while_killed(
        infra_endpoints, f"durability_{uuid.uuid4().hex[:10]}", w=1, journal=False))
    print(f"{acknowledged} unjournaled writes acknowledged, {lost} of them lost by the kill -9")
    assert acknowledged > 0
    assert lost == 0, f"{lost} of {acknowledged} acknowledged unjournaled writes lost"


async def test_after_a_kill_9_of_the_broker_our_producer_publishes_again(kafka_topics: InfraSettings,
                                                                         infra_endpoints: dict[str, str]) -> None:
    server = local_server(infra_endpoints, "kafka")
    # the namespace's topic in the broker's snapshot, so that it outlives the kill
    await asyncio.to_thread(wait_for_snapshot_of, server, INBOUND_MESSAGES.name(kafka_topics.namespace))
    broker = make_broker(kafka_topics.kafka_bootstrap, "test")
    await broker.connect()
    publisher = EventPublisher(broker, kafka_topics.namespace)
    try:
        for number in range(20):  # the last of them acknowledged just before the kill: their sequence is lost
            await publisher.publish(_event(number), INBOUND_MESSAGES)
        await asyncio.to_thread(kill_server, server)
        await asyncio.to_thread(start_again, server)
        for number in range(20, 23):
            await asyncio.wait_for(publisher.publish(_event(number), INBOUND_MESSAGES), 30)
    finally:
        await asyncio.wait_for(broker.stop(), 30)


def _event(number: int) -> MessageReceived:
    now = datetime.now(UTC)
    return MessageReceived(
        occurred_at=now, tenant_id="acme", correlation_id="kill", channel_id="wa-main", external_user_id="15550001111",
        channel_type="whatsapp", customer=Customer(wa_id="15550001111"), provider_message_id=f"wamid.{number}",
        provider_timestamp=now, received_at=now, parts=(TextPart(text=f"message {number}"),))
