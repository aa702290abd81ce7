"""The stream: first messages create contacts exactly once (real concurrency), later ones record last-seen and
the platform name, duplicates change nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from contacts_helpers import AGENT, T0, message, read_events, running

from parley_common.cloudevents import headers_for
from parley_common.events.contacts import ContactCreated, ContactUpdated
from parley_common.events.inbound import Customer, MessageReceived, SystemPart
from parley_common.ids import contact_id_of_first_message
from parley_common.kafka import make_broker
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES
from parley_contacts.adapters.collections import Collections
from parley_contacts.adapters.sightings import SightingsStore
from parley_contacts.domain.inbound import derived_event_id, per_customer
from parley_contacts.handlers.inbound import InboundHandler


async def wait_for(check: Any, wait: float = 30) -> None:
    """Poll the database (the consumer gives no signal of its own) until `check` holds."""
    async with asyncio.timeout(wait):
        for _ in range(int(wait * 10)):
            if await check():
                return
            await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


@asynccontextmanager
async def replicas(infra_settings: InfraSettings, *names: str) -> AsyncIterator[list[SightingsStore]]:
    """One store per name, each with its own database client: as many replicas of contacts' consumer."""
    clients = [mongo_client(infra_settings.mongo_uri, name) for name in names]
    try:
        stores = []
        for client in clients:
            collections = Collections(client[infra_settings.database_name("contacts")])
            await collections.ensure_indexes()
            stores.append(SightingsStore(collections))
        yield stores
    finally:
        for client in clients:
            await client.close()


async def test_concurrent_first_messages_create_one_contact(infra_settings: InfraSettings, mongo: Any) -> None:
    """Two 'replicas' (separate clients and stores) record the same new customer at once, many times."""
    async with replicas(infra_settings, "replica-0", "replica-1") as stores:
        events = [message("447700900123", at=T0 + timedelta(seconds=n)) for n in range(16)]
        outcomes = await asyncio.gather(*(
            stores[n % 2].record(per_customer([event])) for n, event in enumerate(events)))
        db = mongo[infra_settings.database_name("contacts")]
        assert await db.contacts.count_documents({"tenant_id": "acme"}) == 1
        assert await db.identities.count_documents({"tenant_id": "acme"}) == 1
        assert sum(len(outcome.created) for outcome in outcomes) == 1
        card = await db.contacts.find_one({"tenant_id": "acme"})
        assert card["last_seen_at"] == T0 + timedelta(seconds=15)
        assert card["phones"] == ["+447700900123"]


async def publish_to(infra: InfraSettings, placed: list[tuple[Any, int]]) -> None:
    broker = make_broker(infra.kafka_bootstrap, "test-producer")
    await broker.connect()
    try:
        for event, partition in placed:
            await broker.publish(event.model_dump_json().encode(), topic=INBOUND_MESSAGES.name(infra.namespace),
                                 key=event.partition_key(), partition=partition, headers=headers_for(event))
    finally:
        await broker.stop()


async def test_two_replicas_consuming_two_partitions(kafka_topics: InfraSettings, mongo: Any) -> None:
    """The same new customer's messages on different partitions, consumed by two app instances in one group."""
    db = mongo[kafka_topics.database_name("contacts")]
    events = [message("15550001234", name="Li", at=T0 + timedelta(seconds=n)) for n in range(12)]
    async with running(kafka_topics), running(kafka_topics):
        await publish_to(kafka_topics, [(event, n % 12) for n, event in enumerate(events)])

        async def all_seen() -> bool:
            card = await db.contacts.find_one({"tenant_id": "acme"})
            return card is not None and card["last_seen_at"] == T0 + timedelta(seconds=11)

        await wait_for(all_seen)
    assert await db.contacts.count_documents({}) == 1
    created = [e for e in await read_events(kafka_topics, 1) if isinstance(e, ContactCreated)]
    assert len(created) == 1 and created[0].identities[0].external_user_id == "15550001234"


async def test_platform_name_refresh_keeps_agent_name_and_duplicates_change_nothing(
        kafka_topics: InfraSettings, mongo: Any) -> None:
    db = mongo[kafka_topics.database_name("contacts")]
    first = message("447700900555", name="Ann", at=T0)
    async with running(kafka_topics) as (app, client):
        publisher = app.state.runtime.publisher
        await publisher.publish(first, INBOUND_MESSAGES)
        await wait_for(lambda: db.contacts.find_one({"tenant_id": "acme"}))
        card = await db.contacts.find_one({"tenant_id": "acme"})
        contact_id = card["_id"]
        assert card["platform_name"] == "Ann" and card["created_by_event_id"] == str(first.event_id)
        await client.patch(f"/v1/contacts/{contact_id}", json={"display_name": "Ann (VIP)"}, headers=AGENT)

        renamed = message("447700900555", name="Annie", at=T0 + timedelta(minutes=5))
        stale = message("447700900555", name="Old Name", at=T0 + timedelta(minutes=1))
        for event in (renamed, renamed, stale):
            await publisher.publish(event, INBOUND_MESSAGES)

        async def renamed_seen() -> bool:
            doc = await db.contacts.find_one({"_id": contact_id})
            return doc is not None and doc["platform_name"] == "Annie"

        await wait_for(renamed_seen)
        await asyncio.sleep(1)  # let the duplicate and the stale message through too
        card = (await client.get(f"/v1/contacts/{contact_id}", headers=AGENT)).json()
        assert card["display_name"] == "Ann (VIP)" and card["platform_name"] == "Annie"
        assert card["identities"][0]["platform_name"] == "Annie"
        assert card["last_seen_at"] == (T0 + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
        found = await client.get("/v1/contacts/search", params={"name": "annie"}, headers=AGENT)
        assert [c["id"] for c in found.json()["items"]] == [contact_id]
    assert await db.contacts.count_documents({}) == 1
    events = await read_events(kafka_topics, 3)
    created = {e.event_id for e in events if isinstance(e, ContactCreated)}
    assert created == {derived_event_id(first.event_id, "created")}
    updates = {(e.event_id, e.changed["platform_name"]) for e in events
               if isinstance(e, ContactUpdated) and "platform_name" in e.changed}
    assert updates == {(derived_event_id(renamed.event_id, "platform_name"), "Annie")}


async def test_a_card_left_missing_by_a_crash_is_created_by_the_customers_next_message(
        infra_settings: InfraSettings, mongo: Any) -> None:
    """A consumer killed between registering a new customer and inserting their card: its batch comes again,
    and may now end with a later message of that customer (the first one no longer the batch's latest). The
    card is created from whichever message comes, once, and announced once."""
    client = mongo_client(infra_settings.mongo_uri, "crashed")
    try:
        collections = Collections(client[infra_settings.database_name("contacts")])
        await collections.ensure_indexes()
        store = SightingsStore(collections)
        first, later = (message("447700900777", name="Bo", at=T0 + timedelta(seconds=n)) for n in range(2))
        await store._register(per_customer([first]))  # what the killed consumer wrote before its card
        db = mongo[infra_settings.database_name("contacts")]
        assert await db.contacts.count_documents({}) == 0

        redelivered = await store.record(per_customer([first, later]))
        again = await store.record(per_customer([first, later]))  # the batch once more (no commit)
        assert [(s.event.event_id, card["_id"]) for s, card in redelivered.created] == \
               [(s.event.event_id, card["_id"]) for s, card in again.created]
        assert [s.event for s, _ in redelivered.created] == [later]
        card = await db.contacts.find_one({})
        entry = await db.identities.find_one({})
        assert await db.contacts.count_documents({}) == 1 and card["_id"] == entry["contact_id"]
        assert card["last_seen_at"] == T0 + timedelta(seconds=1) and card["platform_name"] == "Bo"

        newer = message("447700900777", name="Bo", at=T0 + timedelta(seconds=5))
        assert (await store.record(per_customer([newer]))).created == []  # known now: last seen only
        assert (await db.contacts.find_one({}))["last_seen_at"] == T0 + timedelta(seconds=5)
    finally:
        await client.close()


async def test_a_lagging_batch_with_a_new_customers_first_message_and_notices_after_it(
        infra_settings: InfraSettings, mongo: Any) -> None:
    """A consumer behind the stream reads a new Telegram-like customer's first message, their blocking the bot and
    a message without the phone in one batch: one card holds all three, its id derived from the first message. A
    later unblock changes the identity and announces no rename (there is none)."""
    async with replicas(infra_settings, "lagging") as (store,):
        handler = InboundHandler(store, publisher=None, now=lambda: T0)  # type: ignore[arg-type]  # events_of only

        def notice(kind: str, at: datetime) -> MessageReceived:
            return message("447700900888", name="Tom", at=at).model_copy(update={
                "customer": Customer(profile_name="Tom"), "parts": (SystemPart(system_kind=kind),)})

        first = message("447700900888", name="Tom", at=T0)
        phoneless = message("447700900888", name="Tom", at=T0 + timedelta(seconds=2)).model_copy(update={
            "customer": Customer(profile_name="Tom")})
        recorded = await store.record(per_customer([first, notice("bot_blocked", T0 + timedelta(seconds=1)),
                                                    phoneless]))
        db = mongo[infra_settings.database_name("contacts")]
        card = await db.contacts.find_one({})
        assert await db.contacts.count_documents({}) == 1
        assert card["phones"] == ["+447700900888"] and card["identities"][0]["blocked_the_bot"] is True
        assert card["last_seen_at"] == T0 + timedelta(seconds=2)
        created = handler.events_of(recorded)
        assert [(type(e), e.event_id) for e in created] == [(ContactCreated, derived_event_id(first.event_id,
                                                                                             "created"))]
        # named by the customer's first message, as the router names it on the conversation that message opens
        assert card["_id"] == created[0].contact_id == contact_id_of_first_message(first.event_id)

        unblocked = await store.record(per_customer([notice("bot_unblocked", T0 + timedelta(seconds=3))]))
        assert unblocked.created == unblocked.renamed == [] and handler.events_of(unblocked) == []
        assert (await db.contacts.find_one({}))["identities"][0]["blocked_the_bot"] is False


async def test_a_card_another_consumer_inserts_first_still_gets_this_batchs_news(
        infra_settings: InfraSettings, mongo: Any) -> None:
    """A partition moving between two replicas: both read a new customer's messages, the other inserts the card
    between this batch's lookup and its own insert. This batch's block notice still reaches the card."""
    async with replicas(infra_settings, "this", "other") as (ours, other):
        first = message("447700900999", name="Tom", at=T0)
        blocked = first.model_copy(update={"event_id": uuid.uuid4(), "provider_timestamp": T0 + timedelta(seconds=1),
                                           "parts": (SystemPart(system_kind="bot_blocked"),)})
        register = ours._register

        async def register_then_the_other_inserts(sightings: list[Any]) -> Any:
            registered = await register(sightings)
            await other.record(per_customer([first]))
            return registered

        ours._register = register_then_the_other_inserts  # type: ignore[method-assign]
        recorded = await ours.record(per_customer([first, blocked]))
        db = mongo[infra_settings.database_name("contacts")]
        card = await db.contacts.find_one({})
        assert await db.contacts.count_documents({}) == 1
        assert card["identities"][0]["blocked_the_bot"] is True
        assert [card["_id"] for _, card in recorded.created] == [card["_id"]]  # the same first event: announced
