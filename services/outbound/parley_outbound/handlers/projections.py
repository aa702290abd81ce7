"""Consumers that keep outbound's own view of other services' facts: the messaging window (from
parley.inbound.messages.v1), blocked identities and custom fields (parley.contacts.events.v1), and delivery statuses
(parley.inbound.statuses.v1) applied to our messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio.client import Pipeline

from parley_common.clock import Clock
from parley_common.events.channels import ChannelHealthReported, TemplateUpdated
from parley_common.events.common import ChannelType
from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
    Identity,
)
from parley_common.events.conversations import ConversationChanged
from parley_common.events.inbound import DeliveryStatusReported, MarketingPreferenceChanged, MessageReceived, SystemPart
from parley_common.events.media import MediaExpired, MediaStored
from parley_common.ids import ConversationKey
from parley_common.mongo import read_stored
from parley_outbound.adapters.contact_fields import ContactFieldsStore
from parley_outbound.adapters.media_store import MediaStore
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.parked_statuses import ParkedStatusRepository
from parley_outbound.adapters.preferences_repo import MarketingPreferenceRepository
from parley_outbound.adapters.templates_repo import TemplateRepository
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.domain.email_thread import EmailThread
from parley_outbound.domain.provider_errors import classify_meta
from parley_outbound.domain.saved_replies import custom_field_changes
from parley_outbound.domain.status import State, advance, from_provider
from parley_outbound.domain.threads import ThreadFacts
from parley_outbound.handlers.updates import UpdatePublisher

MAX_STATUS_RACES = 3


@dataclass(frozen=True, slots=True)
class SubscriptionNotices:
    """The system notices that end or (re)start a channel's subscription; other notices change nothing."""

    ends: frozenset[str]
    starts: frozenset[str] = frozenset()


# Viber: the first message subscribes, `unsubscribed` ends it, opening the chat does not (reference §4.8).
# Telegram: the user blocking the bot ends it (`my_chat_member` kicked), unblocking or writing again restarts it.
SUBSCRIPTIONS = {
    ChannelType.VIBER: SubscriptionNotices(frozenset({"unsubscribed"}), frozenset({"subscribed"})),
    ChannelType.TELEGRAM: SubscriptionNotices(frozenset({"bot_blocked"}), frozenset({"bot_unblocked"})),
}


def subscription(event: MessageReceived) -> bool | None:
    """What this customer event says about being allowed to write to them; None: nothing."""
    notices = SUBSCRIPTIONS.get(event.channel_type)
    if notices is None:
        return None
    kinds = {part.system_kind for part in event.parts if isinstance(part, SystemPart)}
    if kinds & notices.ends:
        return False
    if kinds & notices.starts:
        return True
    return None if kinds else True  # a message of their own subscribes; another notice says nothing


class WindowProjection:
    def __init__(self, projections: WindowStore) -> None:
        self._projections = projections

    def queue_message(self, pipeline: Pipeline, event: MessageReceived) -> None:
        """A customer message's window facts, added to the pipeline of its consumer batch."""
        if event.direction != "inbound":
            return  # an echo of the business writing elsewhere opens no window
        subscribed = subscription(event)
        if subscribed is False:
            self._projections.queue_subscription(pipeline, event.conversation_key, False, event.provider_timestamp)
            return
        mail = event.email
        if mail is not None and mail.message_id is not None and mail.message_id.startswith("<"):  # not synthetic
            self._projections.queue_email(pipeline, event.conversation_key,
                                          EmailThread(mail.message_id, mail.references, mail.subject))
        free_entry = bool(event.referral and event.referral.free_entry_point)
        self._projections.queue_customer_message(pipeline, event.conversation_key, event.provider_timestamp,
                                                 free_entry, subscribed)

    async def on_conversations_changed(self, events: list[ConversationChanged]) -> None:
        """The thread facts of a consumer batch in one round trip."""
        await self._projections.set_threads(thread_facts(events))

    def queue_conversations_changed(self, pipeline: Pipeline, events: list[ConversationChanged]) -> None:
        """The same, added to a rebuild's pipeline."""
        self._projections.queue_threads(pipeline, thread_facts(events))

    def queue_contact_event(self, pipeline: Pipeline, event: Any) -> None:
        if isinstance(event, ContactBlocked | ContactUnblocked):
            identity = event.identity
            key = ConversationKey(event.tenant_id, identity.channel_id, identity.external_user_id)
            self._projections.queue_blocked_change(pipeline, key, isinstance(event, ContactBlocked), event.occurred_at)


def thread_facts(events: list[ConversationChanged]) -> list[tuple[ConversationKey, ThreadFacts, datetime]]:
    """Each event carries the conversation's state after it, so a batch's latest change per conversation is all
    that needs writing (with its time: the store keeps the latest change)."""
    latest: dict[ConversationKey, ConversationChanged] = {}
    for event in events:
        kept = latest.get(event.conversation_key)
        if kept is None or event.changed_at >= kept.changed_at:
            latest[event.conversation_key] = event
    return [(key, ThreadFacts(event.status, event.assignee.kind if event.assignee else None,
                              event.assignee.id if event.assignee else None), event.changed_at)
            for key, event in latest.items()]


class PreferenceProjection:
    """Marketing opt-outs: in outbound's database first (durable: what the cache restores them from after a
    restart), then in the cache's window projection every send reads."""

    def __init__(self, projections: WindowStore, preferences: MarketingPreferenceRepository) -> None:
        self._projections = projections
        self._preferences = preferences

    async def on_preference(self, event: MarketingPreferenceChanged) -> None:
        await self._preferences.record(event.conversation_key, event.opted_out, event.provider_timestamp)
        await self._projections.record_marketing_preference(event.conversation_key, event.opted_out,
                                                            event.provider_timestamp)


class TemplateStatusProjection:
    """Template status and quality from the provider's webhooks (parley.channels.updates.v1): a template Meta
    paused or disabled is refused at once (`template_not_approved`), not only after the next sync. Channel health
    reports concern no send: outbound leaves them to whoever watches the channels."""

    def __init__(self, templates: TemplateRepository) -> None:
        self._templates = templates

    async def on_channel_update(self, event: TemplateUpdated | ChannelHealthReported) -> None:
        if isinstance(event, TemplateUpdated):
            await self._templates.set_status(event.tenant_id, event.channel_id, event.name, event.language,
                                             event.status, event.quality)


class ContactFieldsProjection:
    """Custom fields per contact and the contact of each identity, for rendering saved replies."""

    def __init__(self, store: ContactFieldsStore) -> None:
        self._store = store

    def queue_contact_event(self, pipeline: Pipeline, event: Any) -> None:
        if isinstance(event, ContactCreated):
            self._store.link(pipeline, event.contact_id, _keys(event.tenant_id, event.identities))
        elif isinstance(event, ContactsMerged):
            self._store.merge(pipeline, event.tenant_id, event.contact_id, event.merged_contact_id)
            self._store.link(pipeline, event.contact_id, _keys(event.tenant_id, event.identities))
        elif isinstance(event, ContactBlocked | ContactUnblocked):  # an identity added after creation
            self._store.link(pipeline, event.contact_id, _keys(event.tenant_id, (event.identity,)))
        elif isinstance(event, ContactUpdated):
            changes = custom_field_changes(event.changed)
            if changes:
                self._store.update(pipeline, event.tenant_id, event.contact_id, changes)


class ContactProjections:
    """parley.contacts.events.v1 a consumer batch at a time: blocked identities (window facts) and custom fields
    with identity links, in one Redis pipeline for the batch (was one or two round trips per event)."""

    def __init__(self, store: WindowStore, windows: WindowProjection, fields: ContactFieldsProjection) -> None:
        self._store = store
        self._windows = windows
        self._fields = fields

    async def on_batch(self, events: list[Any]) -> None:
        async with self._store.pipeline() as pipeline:  # in the batch's order: a merge after the updates before it
            for event in events:
                self._windows.queue_contact_event(pipeline, event)
                self._fields.queue_contact_event(pipeline, event)
            await pipeline.execute()  # an empty pipeline answers [] without a round trip


def _keys(tenant_id: str, identities: tuple[Identity, ...]) -> list[ConversationKey]:
    return [ConversationKey(tenant_id, identity.channel_id, identity.external_user_id) for identity in identities]


class MediaProjection:
    def __init__(self, media: MediaStore) -> None:
        self._media = media

    async def on_media_event(self, event: Any) -> None:
        if isinstance(event, MediaStored):
            await self._media.stored(event.tenant_id, event.media_id, event.mime_type, event.size_bytes,
                                     event.expires_at)
        elif isinstance(event, MediaExpired):
            await self._media.expired(event.tenant_id, event.media_id)


class StatusProjection:
    def __init__(self, messages: MessageRepository, parked: ParkedStatusRepository, updates: UpdatePublisher,
                 clock: Clock) -> None:
        self._messages = messages
        self._parked = parked
        self._updates = updates
        self._clock = clock

    async def on_status(self, event: DeliveryStatusReported) -> None:
        if from_provider(event.status) is None or await self._apply(event):
            return
        # No message has this provider id yet: the webhook may have beaten our write after the send call. Park it;
        # the sender replays it once it records the id. Checking again closes the race with that replay.
        await self._parked.park(event, self._clock.now())
        if await self._messages.by_provider_id(event.tenant_id, event.channel_id, event.provider_message_id):
            await self.apply_parked(event.tenant_id, event.channel_id, event.provider_message_id)

    async def apply_parked(self, tenant_id: str, channel_id: str, provider_message_id: str) -> None:
        """Replay parked statuses through the same monotonic machine (a duplicate or stale one changes nothing)."""
        parked = await self._parked.parked(tenant_id, channel_id, provider_message_id)
        for doc in parked:
            await self._apply(read_stored(DeliveryStatusReported, doc["event"]))
        await self._parked.remove([doc["_id"] for doc in parked])

    async def _apply(self, event: DeliveryStatusReported) -> bool:
        """False when no message of ours has this provider id (not stored yet, or sent by another system)."""
        reported = from_provider(event.status)
        for _ in range(MAX_STATUS_RACES):  # the sender may move the same message at the same time
            doc = await self._messages.by_provider_id(event.tenant_id, event.channel_id, event.provider_message_id)
            if doc is None:
                return False
            current = State(doc["state"])
            new = advance(current, reported) if reported else None
            if new is None:
                if reported is current and _moved_by(doc, event):
                    # this status moved it already, and its event may not have gone out (a failure or a stop
                    # after the write): again, under the same event id (a provider's duplicate is taken once too)
                    await self._updates.state_changed(doc, current, event.provider_timestamp,
                                                      **_failure(event, current))
                return True
            if await self._transition(doc, event, new):
                return True
        return True

    async def _transition(self, doc: dict[str, Any], event: DeliveryStatusReported, new: State) -> bool:
        failure = _failure(event, new)
        fields: dict[str, Any] = {"error": failure["error"].model_dump()} if failure["error"] else {}
        if failure["reason"]:
            fields["reason"] = failure["reason"]
        if not await self._messages.transition(doc["tenant_id"], doc["_id"], State(doc["state"]), new,
                                               event.provider_timestamp, **fields):
            return False
        await self._updates.state_changed(doc, new, event.provider_timestamp, **failure)
        return True


def _moved_by(doc: dict[str, Any], event: DeliveryStatusReported) -> bool:
    """Whether this status is the one that moved the message to its state (its time is the state's in the
    history: the database keeps milliseconds); not, e.g., WhatsApp's `sent` callback after the send stored `sent`."""
    at = (doc.get("history") or {}).get(State(doc["state"]).value)
    return at is not None and abs(at - event.provider_timestamp) < timedelta(milliseconds=1)


def _failure(event: DeliveryStatusReported, new: State) -> dict[str, Any]:
    """A failed callback's first error and the reason it means (none for any other status)."""
    error = event.errors[0] if event.errors and new is State.FAILED else None
    return {"error": error, "reason": _failure_reason(event.channel_type, error.code) if error else None}


def _failure_reason(channel_type: ChannelType, code: str) -> str:
    """A failed callback's error code as the same reason a synchronous error would give (131047 → re-engagement)."""
    if channel_type in (ChannelType.WHATSAPP, ChannelType.MESSENGER, ChannelType.INSTAGRAM):
        return classify_meta(channel_type, code, 400).reason
    return f"provider_error_{code}"
