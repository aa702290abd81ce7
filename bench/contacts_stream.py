"""Contacts benchmark: contact upserts from the message stream on one process against the local servers.

1. store only: `SightingsStore.record` (identity registry upsert + card insert) for new customers in batches of
   several sizes, then for repeat messages of known customers (last-seen update + name check);
2. end to end: N first messages pre-published to Kafka (distinct customers over the 12 partitions), then one
   contacts app consumes them, a consumer batch in a few bulk writes; contacts/s until all exist.
3. `--rate R`: instead, the cost of a message at a steady rate — one contacts app in this process, a publisher
   process sending N first messages at R/s, then the same N customers again (known customers): CPU of the
   contacts process and of the database server per message, each one's idle rate subtracted.

Run (test-profile infra up):
  eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI
  .venv/bin/python bench/contacts_stream.py --count 4000
  .venv/bin/python bench/contacts_stream.py --count 1000 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgi_lifespan import LifespanManager
from proc_cpu import ProcessGroups
from prometheus_client import REGISTRY
from pydantic import SecretStr

from parley_common.channels import Channels
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.kafka import EventPublisher, ensure_topics, make_broker
from parley_common.mongo import mongo_client
from parley_common.round_trips import DATABASE
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from parley_contacts.adapters.collections import Collections
from parley_contacts.adapters.sightings import SightingsStore
from parley_contacts.app import create_app
from parley_contacts.domain.inbound import per_customer
from parley_contacts.settings import ContactsSettings

DATABASE_PID = Path(__file__).resolve().parents[1] / ".run/test/mongo.pid"

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
CHANNELS = Channels.parse({"channels": [{"id": "wa-main", "type": "whatsapp", "tenant_id": "bench",
                                         "phone_number_id": "pn-bench", "access_token": "token",
                                         "app_secret": "secret", "verify_token": "verify"}]})
NAMES = ["Ana Silva", "José Álvarez", "Chloé Martin", "Li Wei", "Olga Petrova", "Ahmed Khan", "Mary Jones"]


def message(n: int, prefix: str, at: datetime = T0) -> MessageReceived:
    user = f"44{prefix}{n:08d}"
    return MessageReceived(
        occurred_at=at, tenant_id="bench", correlation_id="bench", channel_id="wa-main", external_user_id=user,
        channel_type="whatsapp", customer=Customer(wa_id=user, profile_name=NAMES[n % len(NAMES)]),
        provider_message_id=f"wamid.{uuid.uuid4()}", provider_timestamp=at, received_at=at,
        parts=(TextPart(text="hello"),))


async def store_only(infra: InfraSettings, count: int) -> None:
    client = mongo_client(infra.mongo_uri, "bench")
    collections = Collections(client[infra.database_name("contacts")])
    await collections.ensure_indexes()
    store = SightingsStore(collections)
    try:
        for batch in (1, 50, 200, 500):
            total = count if batch > 1 else count // 10
            events = [message(n, f"{batch:03d}"[-3:]) for n in range(total)]
            started = time.perf_counter()
            for start in range(0, total, batch):
                await store.record(per_customer(events[start:start + batch]))
            rate = total / (time.perf_counter() - started)
            print(f"store: first messages, batch {batch:>3}: {total} contacts in {total / rate:.1f} s = {rate:,.0f}/s")
        events = [message(n, "200", T0 + timedelta(minutes=1)) for n in range(count)]
        started = time.perf_counter()
        for start in range(0, count, 200):
            await store.record(per_customer(events[start:start + 200]))
        rate = count / (time.perf_counter() - started)
        print(f"store: repeat messages (known customers), batch 200: {rate:,.0f}/s")
    finally:
        await client.drop_database(infra.database_name("contacts"))
        await client.close()


async def end_to_end(infra: InfraSettings, count: int, args_timeout: float = 600) -> None:
    broker = make_broker(infra.kafka_bootstrap, "bench-producer")
    await broker.connect()
    publisher = EventPublisher(broker, infra.namespace)
    started = time.perf_counter()
    for start in range(0, count, 200):
        await asyncio.gather(*(publisher.publish(message(n, "999"), INBOUND_MESSAGES)
                               for n in range(start, min(count, start + 200))))
    await broker.stop()
    print(f"kafka: {count} messages published in {time.perf_counter() - started:.1f} s")
    app = create_app(ContactsSettings(infra=infra), channels=CHANNELS)
    contacts = app.state.collections.contacts
    started = time.perf_counter()
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        for _ in range(int(args_timeout * 5)):  # poll: the consumer gives no completion signal
            if await contacts.estimated_document_count() >= count:
                break
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
    print(f"end to end: {count} first messages -> {count} contacts + ContactCreated in {elapsed:.1f} s "
          f"= {count / elapsed:,.0f}/s (batches of up to 200, app start included)")
    client = mongo_client(infra.mongo_uri, "bench")
    await client.drop_database(infra.database_name("contacts"))
    await client.close()


def publish_steadily(infra: InfraSettings, count: int, rate: float, at: datetime) -> None:
    """In a process of its own (its CPU is not the contacts process's): `count` messages at `rate` per second."""
    async def run() -> None:
        broker = make_broker(infra.kafka_bootstrap, "bench-steady")
        await broker.connect()
        publisher = EventPublisher(broker, infra.namespace)
        started = time.monotonic()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            await publisher.publish(message(n, "777", at), INBOUND_MESSAGES)
        await broker.stop()

    asyncio.run(run())


def handled() -> float:
    """Inbound messages the contacts app handled so far (its own metric, read in this process: no server asked)."""
    labels = {"service": "contacts", "topic": INBOUND_MESSAGES.base_name, "outcome": "handled"}
    return REGISTRY.get_sample_value("parley_consumer_records_total", labels) or 0.0


def database_round_trips() -> float:
    return REGISTRY.get_sample_value("parley_round_trips_total", {"kind": DATABASE}) or 0.0


async def steady(infra: InfraSettings, count: int, rate: float, idle_seconds: float = 5) -> None:
    database = ProcessGroups({"database": int(DATABASE_PID.read_text())})

    def cpu() -> tuple[float, float, float, float]:
        return time.process_time(), database.cpu_seconds()["database"], time.monotonic(), database_round_trips()

    app = create_app(ContactsSettings(infra=infra.model_copy(update={"count_round_trips": True})), channels=CHANNELS)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await asyncio.sleep(5)  # the consumer joins its group
        before = cpu()
        await asyncio.sleep(idle_seconds)
        after = cpu()
        idle = [(after[i] - before[i]) / (after[2] - before[2]) for i in (0, 1)]
        print(f"idle: contacts {idle[0]:.1%} of a core, database {idle[1]:.1%}")
        for label, at in (("new customers", T0), ("known customers", T0 + timedelta(minutes=1))):
            goal = handled() + count
            before = cpu()
            publisher = multiprocessing.get_context("spawn").Process(
                target=publish_steadily, args=(infra, count, rate, at))
            publisher.start()
            for _ in range(6000):  # poll (at most 10 min): the consumer gives no completion signal
                if handled() >= goal:
                    break
                await asyncio.sleep(0.1)
            after = cpu()
            publisher.join()
            elapsed = after[2] - before[2]
            per = [(after[i] - before[i] - idle[i] * elapsed) / count * 1000 for i in (0, 1)]
            print(f"{label}: {count} messages at {rate:g}/s in {elapsed:.1f} s; per message: contacts "
                  f"{per[0]:.2f} ms, database {per[1]:.2f} ms of CPU (idle subtracted), "
                  f"{(after[3] - before[3]) / count:.2f} database round trips")
    client = mongo_client(infra.mongo_uri, "bench")
    await client.drop_database(infra.database_name("contacts"))
    await client.close()


async def main(args: argparse.Namespace) -> None:
    infra = InfraSettings(namespace=f"bench{uuid.uuid4().hex[:8]}", jwt_secret=SecretStr("b" * 40))
    if args.rate:
        await ensure_topics(infra.kafka_bootstrap, infra.namespace)
        await steady(infra, args.count, args.rate)
        return
    await store_only(infra, args.count)
    await ensure_topics(infra.kafka_bootstrap, infra.namespace)
    await end_to_end(infra, args.count)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--rate", type=float, help="messages per second: the steady-rate measurement (3.)")
    asyncio.run(main(parser.parse_args()))
