"""The send consumer's batch path on the real broker, database and cache: per-conversation order inside a batch,
one failing or poison record not holding back the others, a crash after the bulk `sending` write, the
compare-and-set of the bulk writes, and the 202 answered before the message is stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT, eventually, publisher, read_topic, status_of
from pymongo.errors import ConnectionFailure

from parley_common.events.inbound import DeliveryStatus, DeliveryStatusReported
from parley_common.events.outbound import AfterSend, OutboundText, Sender, SendMessage
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_common.topics import CONVERSATIONS_COMMANDS, DEAD_LETTERS, OUTBOUND_MESSAGES, OUTBOUND_REQUESTS
from parley_outbound.adapters.messages_repo import Move
from parley_outbound.domain.status import State
from parley_outbound.handlers.send_batches import SendBatches
from parley_outbound.handlers.updates import message_doc, status_event_id

pytestmark = pytest.mark.asyncio(loop_scope="module")


def command(user: str, message_id: str, text: str = "hi") -> SendMessage:
    return SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-batch", channel_id="tg-bot",
                       external_user_id=user, message_id=message_id, channel_type="telegram",
                       sender=Sender(kind="bot", bot_id="b"), content=OutboundText(text=text))


async def open_windows(app: FastAPI, *users: str) -> None:
    at = datetime.now(UTC) - timedelta(minutes=1)
    for user in users:
        await app.state.sender.projections.record_customer_message(ConversationKey(TENANT, "tg-bot", user), at,
                                                                   False, None)


async def states(app: FastAPI, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    docs = await app.state.sender.messages.get_many(ids)
    return {message_id: (doc["state"], doc.get("reason")) for message_id, doc in docs.items()}


async def test_one_conversation_in_order_others_at_once(app: FastAPI, fake_provider: FakeProvider) -> None:
    await open_windows(app, "tg-order-1", "tg-order-2")
    batch = [command("tg-order-1", f"order-1-{n}", f"first {n}") for n in range(4)]
    batch.insert(2, command("tg-order-2", "order-2-0", "other"))
    await asyncio.wait_for(app.state.sender.handle_batch(batch), 20)
    assert [body["text"] for body in fake_provider.bodies_for("tg-order-1")] == [f"first {n}" for n in range(4)]
    stored = await states(app, [c.message_id for c in batch])
    assert set(stored.values()) == {("sent", None)} and len(stored) == 5


async def test_a_failing_or_poison_record_does_not_hold_back_the_batch(
        app: FastAPI, client: httpx.AsyncClient, fake_provider: FakeProvider, module_infra: InfraSettings) -> None:
    users = ["tg-batch-ok-1", "fail-403", "tg-batch-ok-2"]
    await open_windows(app, *users)
    topic = OUTBOUND_REQUESTS.name(module_infra.namespace)
    await app.state.publisher._broker.publish(b'{"broken": true}', topic=topic, key=b"acme|tg-bot|broken")
    await asyncio.gather(*(publisher(app).publish(command(user, f"mixed-{user}"), OUTBOUND_REQUESTS)
                           for user in users))
    await status_of(client, "mixed-tg-batch-ok-1", "sent")
    await status_of(client, "mixed-tg-batch-ok-2", "sent")
    failed = await status_of(client, "mixed-fail-403", "failed")
    assert failed["reason"] == "user_blocked_business"
    letters = await read_topic(module_infra, DEAD_LETTERS, lambda seen: len(seen) >= 1,
                               where=lambda letter: letter.reason == "invalid_event")
    assert letters[0].service == "outbound"


async def test_a_crash_after_the_bulk_sending_write_never_sends(app: FastAPI, client: httpx.AsyncClient,
                                                                fake_provider: FakeProvider) -> None:
    sender = app.state.sender
    users = ["tg-crash-batch-1", "tg-crash-batch-2"]
    await open_windows(app, *users)
    batch = [command(user, f"crash-{user}") for user in users]
    original = sender.delivery.send

    async def killed_before_call(*args: Any) -> Any:
        raise asyncio.CancelledError  # the process dies after the `sending` write, before any provider call
    sender.delivery.send = killed_before_call
    try:
        with pytest.raises(asyncio.CancelledError):
            await sender.handle_batch(batch)
    finally:
        sender.delivery.send = original
    assert set((await states(app, [c.message_id for c in batch])).values()) == {("sending", None)}
    await asyncio.gather(*(publisher(app).publish(c, OUTBOUND_REQUESTS) for c in batch))  # redelivered
    for c in batch:
        assert (await status_of(client, c.message_id, "failed"))["reason"] == "send_outcome_unknown"
    assert all(fake_provider.bodies_for(user) == [] for user in users)


async def test_an_outcome_stored_but_not_announced_is_announced_when_the_command_comes_again(
        app: FastAPI, fake_provider: FakeProvider, module_infra: InfraSettings) -> None:
    """The outcome's event failed after the outcome was written (the broker away, or the process stopped there):
    the command comes again, finds the message sent and does not send it again, but announces it — the status
    and the after-send action under the same event ids as the first attempt's, so subscribers take them once."""
    sender = app.state.sender
    await open_windows(app, "tg-unannounced")
    sent = command("tg-unannounced", "unannounced-1").model_copy(update={"after_send": AfterSend(action="close")})
    state_changed = sender.updates.state_changed

    async def broker_away_for_sent(doc: Any, state: State, *args: Any, **kwargs: Any) -> None:
        if state is State.SENT:
            raise KafkaConnectionError("the broker went away")
        await state_changed(doc, state, *args, **kwargs)

    sender.updates.state_changed = broker_away_for_sent
    try:
        with pytest.raises(KafkaConnectionError):
            await sender.handle_batch([sent])
    finally:
        sender.updates.state_changed = state_changed
    assert (await states(app, ["unannounced-1"]))["unannounced-1"] == ("sent", None)

    await sender.handle_batch([sent])  # redelivered
    await sender.handle_batch([sent])  # and once more: announced again, under the same ids
    assert len(fake_provider.bodies_for("tg-unannounced")) == 1
    statuses = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 3,
                                where=lambda event: event.message_id == "unannounced-1")
    assert [event.status for event in statuses] == ["queued", "sent", "sent"]
    assert statuses[1].event_id == statuses[2].event_id == status_event_id("unannounced-1", State.SENT)
    actions = await read_topic(module_infra, CONVERSATIONS_COMMANDS, lambda seen: len(seen) >= 2,
                               where=lambda event: event.related_message_id == "unannounced-1")
    assert [action.action for action in actions] == ["close", "close"] and actions[0].event_id == actions[1].event_id


async def test_a_status_stored_but_not_announced_is_announced_when_it_comes_again(
        app: FastAPI, module_infra: InfraSettings) -> None:
    """A provider's status moved the message and its event failed: the status comes again (Meta retries, or the
    consumer's batch is redelivered) and is announced, under the same event id. A status that did not move it
    (WhatsApp's `sent` callback after the send stored `sent`) is not announced again."""
    sender = app.state.sender
    statuses = sender.apply_parked_statuses.__self__  # the status projection, as the consumer calls it
    await open_windows(app, "tg-status-again")
    await sender.handle_batch([command("tg-status-again", "status-again-1")])
    provider_id = (await sender.messages.get(TENANT, "status-again-1"))["provider_message_id"]

    def reported(value: DeliveryStatus) -> DeliveryStatusReported:
        now = datetime.now(UTC)
        return DeliveryStatusReported(occurred_at=now, tenant_id=TENANT, correlation_id="c-st", channel_id="tg-bot",
                                      external_user_id="tg-status-again", channel_type="telegram",
                                      provider_message_id=provider_id, status=value, provider_timestamp=now)
    delivered = reported(DeliveryStatus.DELIVERED)
    state_changed = sender.updates.state_changed

    async def broker_away(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("the broker went away")

    sender.updates.state_changed = broker_away
    try:
        with pytest.raises(KafkaConnectionError):
            await statuses.on_status(delivered)
    finally:
        sender.updates.state_changed = state_changed
    assert (await states(app, ["status-again-1"]))["status-again-1"] == ("delivered", None)

    await statuses.on_status(reported(DeliveryStatus.SENT))  # moved nothing: not announced
    await statuses.on_status(delivered)
    events = await read_topic(module_infra, OUTBOUND_MESSAGES, lambda seen: len(seen) >= 3,
                              where=lambda event: event.message_id == "status-again-1")
    assert [event.status for event in events] == ["queued", "sent", "delivered"]
    assert events[2].event_id == status_event_id("status-again-1", State.DELIVERED)


async def test_a_failing_chunk_lets_the_provider_calls_in_flight_finish_and_record(
        app: FastAPI, client: httpx.AsyncClient, fake_provider: FakeProvider) -> None:
    """One chunk's write fails while another chunk's provider call is out: that call is answered and recorded
    `sent` (cancelled, its message stayed `sending`, and the batch delivered again failed it as outcome-unknown,
    though the provider had it); the batch comes again and sends the other."""
    sender = app.state.sender
    await open_windows(app, "tg-chunk-fails", "tg-chunk-flies")
    batch = [command("tg-chunk-fails", "chunk-fails"), command("tg-chunk-flies", "chunk-flies")]
    batches = SendBatches(sender, concurrency=8, chunk_size=1)  # one chunk per message
    write_batch = sender.messages.write_batch

    async def fails_for_one(inserts: list[dict[str, Any]], moves: list[Move]) -> Any:
        if any(doc["_id"] == "chunk-fails" for doc in inserts):
            raise ConnectionFailure("the database went away for this write")
        return await write_batch(inserts, moves)

    sender.messages.write_batch = fails_for_one
    fake_provider.latency = 0.3  # the other chunk's call is out when the first chunk fails
    try:
        with pytest.raises(ConnectionFailure):
            await batches.handle(batch)
    finally:
        sender.messages.write_batch = write_batch
        fake_provider.latency = 0
    assert (await states(app, ["chunk-flies"]))["chunk-flies"] == ("sent", None)
    await batches.handle(batch)  # redelivered
    assert await states(app, ["chunk-fails", "chunk-flies"]) == {"chunk-fails": ("sent", None),
                                                                 "chunk-flies": ("sent", None)}
    assert len(fake_provider.bodies_for("tg-chunk-flies")) == 1


async def test_bulk_moves_report_only_what_they_moved(app: FastAPI) -> None:
    messages = app.state.sender.messages
    now = datetime.now(UTC)
    docs = [message_doc(command("tg-cas", f"cas-{n}"), State.SENDING, now, {}) for n in range(3)]
    written = await messages.write_batch(docs, [])
    assert written.inserted == {"cas-0", "cas-1", "cas-2"}
    assert await messages.transition(TENANT, "cas-1", State.SENDING, State.FAILED, now)  # another writer wins
    again = await messages.write_batch([docs[0]], [Move(TENANT, f"cas-{n}", State.SENDING, State.SENT, now)
                                                   for n in range(3)])
    assert again.inserted == set() and again.moved == {"cas-0", "cas-2"}
    assert (await states(app, ["cas-1"]))["cas-1"] == ("failed", None)


async def test_accepted_message_is_visible_before_the_consumer_stores_it(app: FastAPI,
                                                                          client: httpx.AsyncClient) -> None:
    await open_windows(app, "tg-pending-1")
    response = await client.post("/v1/messages", json={"channel_id": "tg-bot", "recipient": {
        "external_user_id": "tg-pending-1"}, "content": {"kind": "text", "text": "soon"}})
    assert response.status_code == 202
    message_id = response.json()["message_id"]
    first = await client.get(f"/v1/messages/{message_id}")  # stored or not yet: never a 404
    assert first.status_code == 200 and first.json()["status"] in ("queued", "sending", "sent")
    await status_of(client, message_id, "sent")

    async def stored() -> bool:
        return await app.state.sender.messages.get(TENANT, message_id) is not None
    await eventually(stored)

