"""The router's consumer of contacts' events takes a batch at a time (real database): a few round trips whatever
the batch's size, each card change applied once by its event id (a batch delivered again after later ones changes
nothing), a fold of two cards in the batch's order, blocks by each identity's latest event."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from parley_common.events.contacts import (
    ContactBlocked,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.settings import InfraSettings
from parley_router.adapters.contact_cards import card_writes
from parley_router.adapters.conversations import ConversationRepository
from parley_router.adapters.directory import Directory
from parley_router.handlers.contacts_in import ContactsHandler, card_change
from parley_router.handlers.inbound import InboundHandler

from .conftest import ENVELOPE, Router, conversation_of, created, identity, inbound


def labelled(contact: str, *labels: str) -> ContactLabelled:
    return ContactLabelled(**ENVELOPE, contact_id=contact, labels=labels)


def fields(contact: str, **changed: Any) -> ContactUpdated:
    return ContactUpdated(**ENVELOPE, contact_id=contact, changed={f"custom_fields.{k}": v for k, v in changed.items()})


class Commands(monitoring.CommandListener):
    """Database commands sent, as `find contacts`, `update conversations`, and the documents their writes name
    (a bulk write's statements or inserted documents: what the database pays for per document)."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        shape = f"{event.command_name} {event.command.get(event.command_name)}"
        self.sent[shape] += 1
        self.statements[shape] += len(event.command.get("updates", ())) + len(event.command.get("documents", ()))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(router: Router, infra_settings: InfraSettings) -> AsyncIterator[Commands]:
    """The router's projection and conversations read and written through a client that counts its commands."""
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True,
                                                                event_listeners=[commands])
    db = client[infra_settings.database_name("router")]
    stores = router.engine.stores
    stores.directory, stores.conversations = Directory(db), ConversationRepository(db)
    yield commands
    await client.close()


async def test_a_batch_costs_a_few_round_trips_whatever_its_size(router: Router, counted: Commands) -> None:
    inbound_handler = InboundHandler(router.engine)
    users = [f"u{number}" for number in range(8)]
    for user in users:
        await inbound_handler.handle(inbound(user=user, text=f"hi {user}"))
    batch: list[object] = []
    for number, user in enumerate(users):  # three events per customer, and a block undone in the same batch
        batch += [created(f"k{number}", user, name=f"Customer {number}"), labelled(f"k{number}", "vip"),
                  fields(f"k{number}", tier=number)]
    batch += [ContactBlocked(**ENVELOPE, contact_id="k0", identity=identity("u0")),
              ContactUnblocked(**ENVELOPE, contact_id="k0", identity=identity("u0")),
              ContactBlocked(**ENVELOPE, contact_id="k1", identity=identity("u1"))]
    counted.sent.clear()

    await ContactsHandler(router.engine)(batch)
    sent = dict(counted.sent)

    for number, user in enumerate(users):
        conv = await conversation_of(router, user)
        assert (conv.contact_id, conv.customer_name, conv.labels) == (f"k{number}", f"Customer {number}", ("vip",))
        assert conv.contact_fields == (("tier", str(number)),)
        assert conv.blocked == (user == "u1")
    # 27 events: the cards in one write and one read, the conversations in one read (one channel), the changed
    # ones saved in one write (with the tab counters'); the blocks in one write (a delete, when one was undone),
    # the blocked one's conversation read (with its key's pointer) and saved
    assert sent == {"update blocked_identities": 1, "delete blocked_identities": 1,
                    "aggregate open_conversations": 1, "find conversations": 1, "update conversations": 2,
                    "update tab_counts": 1,
                    "insert contacts": 1, "update contacts": 1, "find contacts": 1}, sent
    # one document written per card change: the new cards inserted, their later changes updates
    assert (counted.statements["insert contacts"], counted.statements["update contacts"]) == (len(users),
                                                                                            2 * len(users))


async def test_a_batch_of_new_cards_writes_one_document_per_event(router: Router, counted: Commands) -> None:
    for user in ("u1", "u2"):
        await InboundHandler(router.engine).handle(inbound(user=user, text=f"hi {user}"))
    counted.sent.clear()

    await ContactsHandler(router.engine)([created("k1", "u1", name="Ana"), created("k2", "u2", name="Bo")])

    assert (counted.sent["insert contacts"], counted.statements["insert contacts"]) == (1, 2)
    assert counted.sent["update contacts"] == 0
    for contact, user, name in (("k1", "u1", "Ana"), ("k2", "u2", "Bo")):
        conv = await conversation_of(router, user)
        assert (conv.contact_id, conv.customer_name) == (contact, name)


async def test_a_new_card_is_inserted_as_its_upsert_would_make_it(router: Router, counted: Commands,
                                                                   infra_settings: InfraSettings) -> None:
    """A contact's creation is inserted (an upsert costs the local database several inserts): alone in its batch
    (then shown as inserted, without a read) and first of its card in a larger one."""
    directory = router.engine.stores.directory
    alone, batched, label = (card_change(event) for event in (
        created("k5", "u5", name="Ana"), created("k6", "u6", name="Bo"), labelled("k6", "vip")))
    assert alone is not None and batched is not None and label is not None
    shown = {**await directory.change_cards([alone]), **await directory.change_cards([batched, label])}
    assert counted.sent["insert contacts"] == 2 and counted.sent["findAndModify contacts"] == 0

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True)
    try:
        cards = client[infra_settings.database_name("router")]["contacts"]
        twins = [replace(change, contact_id=f"{change.contact_id}-upserted") for change in (alone, batched, label)]
        await cards.bulk_write([write.operation() for write in card_writes(twins, {})], ordered=True)
        for change, twin in zip((alone, batched), twins, strict=False):
            inserted, upserted = [await cards.find_one({"_id": card.card_id}, projection={"_id": 0})
                                  for card in (change, twin)]
            assert inserted is not None and inserted == upserted, (inserted, upserted)
        assert shown[alone.card_id] == {"_id": alone.card_id, "tenant_id": "acme", "name": "Ana",
                                        "identities": ["wa-1|u5"]}
        assert shown[batched.card_id]["labels"] == ["vip"]
    finally:
        await client.close()


async def test_a_batch_delivered_again_with_a_new_card_in_it_creates_that_card(router: Router,
                                                                                counted: Commands) -> None:
    for user in ("u1", "u2", "u3"):
        await InboundHandler(router.engine).handle(inbound(user=user, text=f"hi {user}"))
    handler = ContactsHandler(router.engine)
    first = [created("k1", "u1", name="Ana"), labelled("k1", "new")]
    await handler(first)
    await handler([labelled("k1", "vip")])
    counted.sent.clear()

    # the batch again (its consumer lost the partition before committing), now with events written after it:
    # the applied ones change nothing, the new card is created with its first change
    await handler([*first, created("k2", "u2", name="Bo"), labelled("k2", "new"), created("k3", "u3")])

    directory = router.engine.stores.directory
    ana, bo, third = [await directory.contact("acme", contact) for contact in ("k1", "k2", "k3")]
    assert ana is not None and (ana["name"], ana["labels"]) == ("Ana", ["vip"])
    assert bo is not None and (bo["name"], bo["labels"]) == ("Bo", ["new"])
    assert third is not None and third["identities"] == ["wa-1|u3"]
    assert counted.sent["update contacts"] == 2  # stopped at the first card with its event, then the rest at once
    assert (await conversation_of(router, "u2")).customer_name == "Bo"


async def test_a_batch_delivered_again_changes_nothing_even_after_later_ones(router: Router) -> None:
    await InboundHandler(router.engine).handle(inbound(user="u1"))
    handler = ContactsHandler(router.engine)
    first = [created("k1", "u1", name="Ana"), labelled("k1", "new"), fields("k1", tier="gold")]
    lone = [labelled("k1", "regular")]  # a batch of one event is written and read back in one findAndModify
    second = [labelled("k1", "vip"), fields("k1", tier=None, city="Lyon")]

    for batch in (first, lone, second):
        await handler(batch)
    for batch in (first, lone):  # a consumer that lost its partitions mid-batch still writes its batches
        await handler(batch)

    card = await router.engine.stores.directory.contact("acme", "k1")
    assert card is not None
    assert (card["name"], card["labels"], card["custom_fields"]) == ("Ana", ["vip"], {"city": "Lyon"})
    conv = await conversation_of(router, "u1")
    assert (conv.labels, conv.contact_fields) == (("vip",), (("city", "Lyon"),))


async def test_a_fold_keeps_the_surviving_cards_fields_and_the_batchs_order(router: Router) -> None:
    for user in ("u3", "u4"):
        await InboundHandler(router.engine).handle(inbound(user=user, text=f"hi {user}"))
    handler = ContactsHandler(router.engine)
    await handler([created("k3", "u3"), fields("k3", tier="gold", city="Lyon"),
                   created("k4", "u4"), fields("k4", tier="silver", size="M")])

    # k4 folded into k3, then k3's city removed: the fold must not bring a value back the batch removed after it
    await handler([ContactsMerged(**ENVELOPE, contact_id="k3", merged_contact_id="k4",
                                  identities=(identity("u3"), identity("u4"))), fields("k3", city=None)])

    directory = router.engine.stores.directory
    survivor = await directory.contact("acme", "k3")
    assert survivor is not None and survivor["custom_fields"] == {"tier": "gold", "size": "M"}
    assert await directory.contact("acme", "k4") == survivor  # the folded card leads to the surviving one
    for user in ("u3", "u4"):
        conv = await conversation_of(router, user)
        assert (conv.contact_id, conv.contact_fields) == ("k3", (("size", "M"), ("tier", "gold")))


async def test_two_replicas_writing_the_same_batch_apply_each_change_once(router: Router,
                                                                          infra_settings: InfraSettings) -> None:
    """A partition moved while its batch was in progress: the old and the new consumer write it at once, so one's
    creating upserts meet the cards the other just created."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True)
    try:
        db = client[infra_settings.database_name("router")]
        replicas = (Directory(db), Directory(db))
        for round_number in range(5):
            contacts = [f"r{round_number}-{number}" for number in range(6)]
            events = [event for contact in contacts for event in (
                created(contact, f"user-{contact}", name=contact), labelled(contact, "new"), fields(contact, tier="1"))]
            batch = [change for change in map(card_change, events) if change is not None]
            await asyncio.gather(*(replica.change_cards(batch) for replica in replicas))

            for contact in contacts:
                card = await db["contacts"].find_one({"_id": f"acme|{contact}"})
                assert card is not None
                assert (card["name"], card["labels"], card["custom_fields"]) == (contact, ["new"], {"tier": "1"})
                assert card["identities"] == [f"wa-1|user-{contact}"]
                assert len(card["applied_events"]) == len(set(card["applied_events"])) == 3
    finally:
        await client.close()
