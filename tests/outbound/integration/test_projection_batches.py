"""Outbound's Redis projections a consumer batch at a time (issue 17: one pipeline per batch, not a round trip per
event), on the real Redis: what a batch leaves behind is what the same events one by one would have left. And the
request path's reads and notes of sends accepted together, shared: each send gets its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from outbound_helpers import TENANT, customer_message, projections_complete
from redis.asyncio import Redis

from parley_common.events.contacts import ContactBlocked, ContactCreated, ContactsMerged, ContactUpdated, Identity
from parley_common.events.conversations import Assignee, ConversationChanged
from parley_common.events.inbound import SystemPart
from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_outbound.adapters.broadcast_replies import BroadcastReplies
from parley_outbound.adapters.contact_fields import ContactFieldsStore
from parley_outbound.adapters.pending_messages import KEEP_SECONDS, PendingMessages
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.handlers.broadcast_projections import ReplyProjection
from parley_outbound.handlers.inbound_projection import InboundMessagesProjection
from parley_outbound.handlers.projections import ContactFieldsProjection, ContactProjections, WindowProjection


def changed(user: str, change: str, status: str, agent: str | None) -> ConversationChanged:
    now = datetime.now(UTC)
    return ConversationChanged(occurred_at=now, tenant_id=TENANT, correlation_id="c-t", channel_id="tg-bot",
                               external_user_id=user, conversation_id=f"conv-{user}", change=change, status=status,
                               assignee=Assignee(kind="agent", id=agent) if agent else None, changed_at=now)


def broadcast_message(user: str, message_id: str) -> SendMessage:
    return SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-b", channel_id="tg-bot",
                       channel_type="telegram", external_user_id=user, message_id=message_id,
                       sender=Sender(kind="system"), content=OutboundText(text="Our spring sale"),
                       broadcast_id="broadcast-1")


class MarkedReplies:
    """Stands in for the messages repository: which broadcast messages were marked replied."""

    def __init__(self) -> None:
        self.marked: list[str] = []

    async def mark_replied(self, tenant_id: str, message_id: str, at: datetime) -> None:
        self.marked.append(message_id)


async def test_a_batch_of_conversation_events_leaves_each_conversations_latest_thread(
        redis: Redis, infra_settings: InfraSettings) -> None:
    store = WindowStore(redis, infra_settings.redis_prefix())
    await projections_complete(redis, infra_settings.redis_prefix())
    await WindowProjection(store).on_conversations_changed([
        changed("batch-a", "offered", "queued", None), changed("batch-b", "assigned", "assigned", "agent.lee"),
        changed("batch-a", "assigned", "assigned", "agent.kim"), changed("batch-b", "closed", "closed", None)])
    a, b = await store.views([ConversationKey(TENANT, "tg-bot", user) for user in ("batch-a", "batch-b")])
    assert (a[1].status, a[1].assignee_kind, a[1].assignee_id) == ("assigned", "agent", "agent.kim")
    assert (b[1].status, b[1].assignee_kind, b[1].assignee_id) == ("closed", None, None)
    await WindowProjection(store).on_conversations_changed([])  # an empty batch writes nothing and does not fail


async def test_sends_accepted_together_each_read_their_own_facts_and_leave_their_own_note(
        redis: Redis, infra_settings: InfraSettings) -> None:
    prefix = infra_settings.redis_prefix()
    store, pending = WindowStore(redis, prefix), PendingMessages(redis, prefix)
    await projections_complete(redis, prefix)
    await WindowProjection(store).on_conversations_changed([
        changed("together-a", "assigned", "assigned", "agent.kim"), changed("together-b", "offered", "queued", None)])
    keys = [ConversationKey(TENANT, "tg-bot", user) for user in ("together-a", "together-b", "together-none")]
    views = await asyncio.gather(*(store.view(key) for key in keys))  # one event-loop turn: one read
    assert [thread.assignee_id for _, thread in views] == ["agent.kim", None, None]
    assert [thread.status for _, thread in views][:2] == ["assigned", "queued"]
    assert views == await store.views(keys)
    notes = {f"together-{n}": {"message_id": f"together-{n}", "status": "queued"} for n in range(3)}
    await asyncio.gather(*(pending.remember(TENANT, message_id, note) for message_id, note in notes.items()))
    await pending.remember(TENANT, "alone", {"message_id": "alone", "status": "queued"})  # not a pipeline of one
    for message_id, note in [*notes.items(), ("alone", {"message_id": "alone", "status": "queued"})]:
        assert await pending.get(TENANT, message_id) == note
        assert 0 < await redis.ttl(f"{prefix}outbound:pending:{TENANT}:{message_id}") <= KEEP_SECONDS


async def test_a_batch_of_customer_messages_opens_windows_and_counts_broadcast_replies(
        redis: Redis, infra_settings: InfraSettings) -> None:
    prefix = infra_settings.redis_prefix()
    store, replies, marked = WindowStore(redis, prefix), BroadcastReplies(redis, prefix), MarkedReplies()
    await projections_complete(redis, prefix)
    projection = InboundMessagesProjection(store, WindowProjection(store),
                                           ReplyProjection(replies, marked))  # type: ignore[arg-type]
    answered = customer_message("tg-bot", "telegram", "batch-answer", timedelta(minutes=5))
    await replies.expect([broadcast_message("batch-answer", "broadcast-msg-1")])
    older = customer_message("tg-bot", "telegram", "batch-order", timedelta(minutes=3))
    newer = customer_message("tg-bot", "telegram", "batch-order", timedelta(minutes=1))
    leaving = customer_message("tg-bot", "telegram", "batch-leaving", timedelta(minutes=1),
                               parts=(SystemPart(system_kind="bot_blocked"),))
    echo = customer_message("tg-bot", "telegram", "batch-echo", timedelta(minutes=1), direction="echo")
    await projection.on_batch([answered, newer, older, leaving, echo])  # a late webhook: the older one last

    views = await store.views([event.conversation_key for event in (answered, newer, leaving, echo)])
    answered_window, order_window, leaving_window, echo_window = (facts for facts, _ in views)
    assert answered_window.last_customer_at == answered.provider_timestamp
    assert order_window.last_customer_at == newer.provider_timestamp  # the latest provider time wins
    assert order_window.subscribed is True
    assert leaving_window.subscribed is False and leaving_window.last_customer_at is None  # opens no window
    assert echo_window.last_customer_at is None  # the business writing elsewhere opens none either
    assert marked.marked == ["broadcast-msg-1"]  # only the customer the broadcast reached answered it
    await projection.on_batch([echo])  # a batch that asks nothing: no round trip, no failure


async def test_a_batch_of_contacts_events_links_merges_updates_and_blocks_in_order(
        redis: Redis, infra_settings: InfraSettings) -> None:
    prefix = infra_settings.redis_prefix()
    store, fields = WindowStore(redis, prefix), ContactFieldsStore(redis, prefix)
    await projections_complete(redis, prefix)
    projection = ContactProjections(store, WindowProjection(store), ContactFieldsProjection(fields))
    now = datetime.now(UTC)
    ana, bea = Identity(channel_id="tg-bot", external_user_id="batch-ana"), Identity(channel_id="tg-bot",
                                                                                     external_user_id="batch-bea")

    def event(model: type[Any], contact_id: str, **fields: Any) -> Any:
        return model(occurred_at=now, tenant_id=TENANT, correlation_id="c-k", contact_id=contact_id, **fields)

    batch = [event(ContactCreated, "c-ana", identities=(ana,)), event(ContactCreated, "c-bea", identities=(bea,)),
             event(ContactUpdated, "c-ana", changed={"custom_fields.tier": "gold"}),
             event(ContactUpdated, "c-bea", changed={"custom_fields.tier": "silver", "custom_fields.pet": "cat"}),
             event(ContactsMerged, "c-ana", merged_contact_id="c-bea", identities=(ana, bea)),
             event(ContactBlocked, "c-ana", identity=bea)]
    for _ in range(2):  # the batch delivered again changes nothing
        await projection.on_batch(batch)
        assert await fields.fields_of(ConversationKey(TENANT, "tg-bot", "batch-bea")) == {"tier": "gold", "pet": "cat"}
        ana_view, bea_view = await store.views([ConversationKey(TENANT, "tg-bot", user)
                                                for user in ("batch-ana", "batch-bea")])
        assert not ana_view[0].blocked and bea_view[0].blocked
    await projection.on_batch([])  # an empty batch: no round trip, no failure
