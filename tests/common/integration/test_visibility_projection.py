"""The visibility projection stores a batch of conversation events in bulk (issue 17; the keys it does not remember
inserted, the others updated): per conversation key the batch's last event decides, as one event at a time did;
other keys are left alone. A key is written only when what a reader needs changed (conversation, team, agent,
status), as far as this process knows: its memory of what it stored is forgotten when partitions move, so a replica
regaining a partition writes again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from known_channels import TEST_CHANNELS
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from sent_commands import SentCommands

from parley_common.consumer_groups import ConsumerGroup, consume_group
from parley_common.events.conversations import Assignee, ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.visibility import Owner
from parley_common.visibility_store import OWNERS, VisibilityProjection, visibility_reads

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ConversationKey("acme", "wa", "u1")


def change(user: str, step: int, team: str | None, agent: str | None, status: str = "assigned",
           kind: str = "assigned", conversation: str = "") -> ConversationChanged:
    return ConversationChanged(occurred_at=NOW, tenant_id="acme", correlation_id="c", channel_id="wa",
                               external_user_id=user, conversation_id=conversation or f"conv-{user}", change=kind,
                               status=status,  # type: ignore[arg-type]
                               assignee=Assignee(kind="agent", id=agent) if agent else None,
                               team_id=team, changed_at=NOW + timedelta(seconds=step))


class OwnersWritten(monitoring.CommandListener):
    """The visibility documents the server wrote (inserted, or matched by an update) and the inserts it refused
    (the key stored already)."""

    def __init__(self) -> None:
        self.documents = 0
        self.refused_inserts = 0
        self._commands: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update") and event.command.get(event.command_name) == OWNERS:
            self._commands[event.request_id] = event.command_name

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self._commands.pop(event.request_id, None) is not None:
            self.documents += event.reply["n"]
            self.refused_inserts += len(event.reply.get("writeErrors", ()))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(infra_settings: InfraSettings) -> AsyncIterator[tuple[AsyncDatabase[Any], OwnersWritten]]:
    written = OwnersWritten()
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True,
                                                      event_listeners=[written])
    db = client[infra_settings.database_name("visibility-counted")]
    yield db, written
    await client.drop_database(db.name)
    await client.close()


def new_customers_conversation(user: str) -> list[ConversationChanged]:
    """A new customer's conversation as the router announces it, one event per consumer batch at a low rate."""
    return [change(user, 0, "sales", None, "queued", "opened"),
            change(user, 1, "sales", None, "queued", "message_appended"),
            change(user, 2, "sales", None, "queued", "contact_changed"),
            change(user, 3, "sales", "ana", "assigned", "offered"),
            change(user, 4, "sales", "ana", "assigned", "offer_accepted"),
            change(user, 5, "sales", "ana", "assigned", "message_status"),
            change(user, 6, "sales", "ana", "closed", "closed"),
            change(user, 7, "sales", "ana", "closed", "contact_changed")]


async def test_a_batch_keeps_each_keys_last_state(mongo: AsyncMongoClient[Any], infra_settings: InfraSettings) -> None:
    projection = VisibilityProjection(mongo[infra_settings.database_name("visibility")])
    await projection.on_conversations_changed([change("u1", 0, "sales", None), change("u2", 0, "vip", "bo")])
    await projection.on_conversations_changed([
        change("u1", 1, "sales", "ana"), change("u1", 2, "support", "cy"), change("u3", 1, "vip", None)])

    keys = [ConversationKey("acme", "wa", user) for user in ("u1", "u2", "u3", "u4")]
    assert await projection.owners(keys) == [Owner("support", "cy"), Owner("vip", "bo"), Owner("vip", None), None]


async def test_a_key_is_written_only_when_what_a_reader_needs_changed(
        counted: tuple[AsyncDatabase[Any], OwnersWritten]) -> None:
    db, written = counted
    projection = VisibilityProjection(db, settle_seconds=0)
    for event in new_customers_conversation("u1"):
        await projection.on_conversations_changed([event])
    assert written.documents == 3  # opened (queued), offered (ana's), closed: not one per event (8)
    assert await projection.owners([KEY]) == [Owner("sales", "ana")]
    [[stored]] = [docs async for docs in projection.every_owner(10)]
    assert (stored["status"], stored["agent"], stored["changed_at"]) == ("closed", "ana", NOW + timedelta(seconds=6))

    await projection.on_conversations_changed(new_customers_conversation("u1"))  # the same batch again
    await projection.on_conversations_changed([change("u1", 9, "sales", "ana", "queued", "opened", "conv-2")])
    assert written.documents == 4  # the redelivery wrote nothing; the customer's next conversation did


async def test_a_replica_regaining_a_partition_writes_again_what_another_replica_changed(
        counted: tuple[AsyncDatabase[Any], OwnersWritten]) -> None:
    db, written = counted
    first, second = (VisibilityProjection(db, settle_seconds=0) for _ in range(2))
    await first.on_conversations_changed([change("u1", 0, "sales", "ana")])
    first.forget_stored()  # the partition moves to the second replica (Reads.on_partitions_moved)
    await second.on_conversations_changed([change("u1", 1, "sales", "bo")])
    assert await first.owners([KEY]) == [Owner("sales", "bo")]  # tried as new, found stored: updated
    first.forget_stored()  # and back
    await first.on_conversations_changed([change("u1", 2, "sales", "ana")])
    assert await first.owners([KEY]) == [Owner("sales", "ana")]
    assert (written.documents, written.refused_inserts) == (3, 2)


async def test_a_key_this_process_stored_is_answered_without_reading_the_database(
        infra_settings: InfraSettings) -> None:
    """Who owns a key this process stored is what the database holds for it while its partitions stay: answered from
    memory. A key it does not remember — another replica's partition, or forgotten when partitions moved — is read."""
    finds: SentCommands[Any] = SentCommands(lambda event: event.command["filter"] if (
        event.command_name == "find" and event.command["find"] == OWNERS) else None)
    client: AsyncMongoClient[Any] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True, event_listeners=[finds])
    db = client[infra_settings.database_name("visibility-reads")]
    try:
        this, other = VisibilityProjection(db, settle_seconds=0), VisibilityProjection(db, settle_seconds=0)
        await this.on_conversations_changed([change("u1", 0, "sales", "ana")])
        await other.on_conversations_changed([change("u2", 0, "vip", None)])
        theirs, nobodys = ConversationKey("acme", "wa", "u2"), ConversationKey("acme", "wa", "u9")

        assert await this.owners([KEY]) == [Owner("sales", "ana")]
        assert finds.sent == []
        assert await this.owners([KEY, theirs, nobodys]) == [Owner("sales", "ana"), Owner("vip", None), None]
        assert finds.sent == [{"_id": {"$in": [str(theirs), str(nobodys)]}}]
        this.forget_stored()
        assert await this.owners([KEY]) == [Owner("sales", "ana")]
        assert finds.sent[1:] == [{"_id": {"$in": [str(KEY)]}}]
    finally:
        await client.drop_database(db.name)
        await client.close()


async def test_the_memory_of_what_was_stored_is_bounded(counted: tuple[AsyncDatabase[Any], OwnersWritten]) -> None:
    db, written = counted
    projection = VisibilityProjection(db, remembered_keys=2, settle_seconds=0)
    for user in ("u1", "u2", "u3", "u1", "u3"):
        await projection.on_conversations_changed([change(user, 0, "sales", None)])
    assert written.documents == 4  # u1 was forgotten for u3, so written again; u3 was still remembered


async def test_after_partitions_move_a_replica_trusts_what_it_writes_only_once_they_settled(
        counted: tuple[AsyncDatabase[Any], OwnersWritten]) -> None:
    """The replica that gave the partition up may still be finishing a batch of it: its write may land after this
    one's, so for a while every event of a key is written."""
    db, written = counted
    projection = VisibilityProjection(db, settle_seconds=1.0)
    projection.forget_stored()
    for step in range(2):
        await projection.on_conversations_changed([change("u1", step, "sales", "ana")])
    assert written.documents == 2
    await asyncio.sleep(1.0)
    for step in range(2, 4):
        await projection.on_conversations_changed([change("u1", step, "sales", "ana")])
    assert written.documents == 3


class Replica(VisibilityProjection):
    """A service's projection, counting the moves of its partitions it was told of (a join tells twice: the
    partitions it gives up before it, those it gets after)."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        super().__init__(db, settle_seconds=0)
        self.moves = 0
        self._moved = asyncio.Event()

    def forget_stored(self) -> None:
        super().forget_stored()
        self.moves += 1
        self._moved.set()

    async def moved(self, times: int) -> None:
        async with asyncio.timeout(60):
            while self.moves < times:
                self._moved.clear()
                await self._moved.wait()

    def consume(self, infra: InfraSettings, name: str) -> KafkaBroker:
        broker = make_broker(infra.kafka_bootstrap, name)
        consume_group(broker, ConsumerGroup("visibility-moves", visibility_reads(self, "visibility-moves")),
                      namespace=infra.namespace, publisher=EventPublisher(broker, infra.namespace), service=name,
                      channels=TEST_CHANNELS)
        return broker


async def test_a_replica_forgets_what_it_stored_when_its_partitions_move(
        kafka_topics: InfraSettings, counted: tuple[AsyncDatabase[Any], OwnersWritten]) -> None:
    db, written = counted
    first, second = Replica(db), Replica(db)
    first_broker = first.consume(kafka_topics, "first")
    await first_broker.start()
    try:
        await first.moved(2)  # joined the group
        await first.on_conversations_changed([change("u1", 0, "sales", "ana")])
        await first.on_conversations_changed([change("u1", 1, "sales", "ana", kind="message_appended")])
        assert written.documents == 1
        second_broker = second.consume(kafka_topics, "second")
        await second_broker.start()  # the group rebalances: the second replica may take the key's partition
        try:
            await second.moved(2)
            await first.moved(4)
            await first.on_conversations_changed([change("u1", 2, "sales", "ana", kind="message_appended")])
            assert written.documents == 2  # what it stored before the move is no longer trusted
        finally:
            await second_broker.stop()
    finally:
        await first_broker.stop()
