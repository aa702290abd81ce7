"""Redis is a cache: when it restarted with nothing kept (or outbound starts against an empty one), outbound's
projections in it are rebuilt here, and until they are every send that needs them is answered
`window_facts_rebuilding` (retryable) or held — never refused as "window closed" for a window the cache forgot.

The loss is seen by the marker's absence (adapters/projection_marker.py): checked every
PARLEY_OUTBOUND_PROJECTION_CHECK_SECONDS, and at once when a send met it. Then, in one replica at a time (a lease
in Redis; another replica takes over when it expires, say after a crash):
1. from outbound's own MongoDB: every contact's custom fields, which contact each identity is, and the blocked
   identities (its audience), and every customer's marketing preference (marketing_preferences) — all of them,
   where the contacts and preferences topics keep 30 days — and each customer's latest broadcast message of the
   last REPLY_WINDOW (7 days; outbound_messages), so an answer to it still counts as the broadcast's reply — and
   each conversation's latest state, who holds its thread (visibility_owners, kept from the conversations topic
   with its status since this was added);
2. from the topics, read from their start to their end at that moment, a batch at a time (one pipeline each):
   parley.inbound.messages.v1 (7 days: the longest window) for the window facts, Viber subscriptions and email
   threads, parley.inbound.preferences.v1 (30 days: the preferences from before the database kept them),
   parley.media.events.v1 (7 days) for the attachments' facts and parley.conversations.events.v1 (7 days) for who
   holds each conversation's thread (those the database kept before it kept the status: a conversation unchanged
   since then and for longer than 7 days comes back held by nobody until its next change);
3. the marker is set — only if this rebuild still holds its lease: a cache that restarted meanwhile lost both.

The service's own consumers go on meanwhile. The writes keep the latest in provider (or event) time, restored
values never overwrite what an event wrote since, so a replayed old event cannot undo a newer one: the replicas
would be harmless together too; the lease only spares the work twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from parley_common.clock import Clock
from parley_common.ids import ConversationKey, new_id
from parley_common.topics import CONVERSATIONS_EVENTS, INBOUND_MESSAGES, INBOUND_PREFERENCES, MEDIA_EVENTS, Topic
from parley_common.visibility_store import VisibilityProjection
from parley_outbound.adapters.audience_repo import AudienceRepository
from parley_outbound.adapters.broadcast_replies import REPLY_WINDOW, BroadcastReplies
from parley_outbound.adapters.contact_fields import ContactFieldsStore
from parley_outbound.adapters.media_store import MediaStore
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.preferences_repo import MarketingPreference, MarketingPreferenceRepository
from parley_outbound.adapters.projection_marker import ProjectionMarker
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.domain.threads import ThreadFacts
from parley_outbound.handlers.projections import MediaProjection, WindowProjection

log = structlog.get_logger(__name__)
LEASE_SECONDS = 30.0  # renewed after every batch: a live rebuild never loses it
BATCH = 500  # records (or contacts) per pipeline
RETRY_SECONDS = 1.0  # after a failed rebuild (the cache or the broker not answering yet)
REPLAYED = (INBOUND_MESSAGES, INBOUND_PREFERENCES, MEDIA_EVENTS, CONVERSATIONS_EVENTS)
Page = TypeVar("Page")
Replay = Callable[[list[str], int], AsyncIterator[list[ConsumerRecord[bytes, bytes]]]]


class LeaseLost(Exception):
    """The cache restarted (or the lease expired) during the rebuild: what it wrote may be gone."""


class ProjectionRebuild:
    def __init__(self, *, redis: Redis, prefix: str, namespace: str, audience: AudienceRepository,
                 preferences: MarketingPreferenceRepository, messages: MessageRepository,
                 owners: VisibilityProjection, clock: Clock,
                 replay: Replay, check_seconds: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._namespace = namespace
        self._audience = audience
        self._preferences = preferences
        self._messages = messages
        self._owners = owners
        self._clock = clock
        self._replay = replay
        self._check_seconds = check_seconds
        self._marker = ProjectionMarker(redis, prefix)
        self._windows = WindowStore(redis, prefix)
        self._fields = ContactFieldsStore(redis, prefix)
        self._replies = BroadcastReplies(redis, prefix)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A send met the loss: look now rather than at the next check."""
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            pause = self._check_seconds
            try:
                if not await self._marker.ready():
                    await self.rebuild_once()
            except Exception:  # the cache or the broker failing: logged, and tried again soon
                log.exception("projection_rebuild_failed")
                pause = min(pause, RETRY_SECONDS)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)

    async def rebuild_once(self) -> bool:
        """True when this replica rebuilt the projections; False when another holds the lease or the cache lost
        this one's work meanwhile (the next check starts again)."""
        token = new_id()
        if not await self._marker.take_lease(token, LEASE_SECONDS):
            return False
        started = time.monotonic()
        log.warning("projection_rebuild_started")
        try:
            contacts = (await self._restore_contacts(token) + await self._restore_preferences(token)
                        + await self._restore_broadcast_replies(token) + await self._restore_threads(token))
            records = await self._replay_topics(token)
            finished = await self._marker.finish(token)
        except LeaseLost:
            finished = False
        except BaseException:
            with contextlib.suppress(Exception):  # the cache may be what failed: then its lease is gone anyway
                await self._marker.release_lease(token)
            raise
        if not finished:
            log.warning("projection_rebuild_lost_its_lease")
            return False
        log.warning("projections_rebuilt", contacts=contacts, records=records,
                    seconds=round(time.monotonic() - started, 3))
        return True

    async def _restore_contacts(self, token: str) -> int:
        def queue(pipeline: Pipeline, docs: list[dict[str, Any]]) -> None:
            for doc in docs:
                tenant_id = doc["tenant_id"]
                identities = [ConversationKey(tenant_id, i["channel_id"], i["external_user_id"])
                              for i in doc.get("identities") or ()]
                self._fields.restore(pipeline, tenant_id, doc["contact_id"], doc.get("fields") or {}, identities)
                for blocked in doc.get("blocked") or ():
                    channel_id, _, user = str(blocked).partition("|")
                    self._windows.queue_blocked(pipeline, ConversationKey(tenant_id, channel_id, user))
        return await self._restore_pages(token, self._audience.every_contact(BATCH), queue)

    async def _restore_preferences(self, token: str) -> int:
        def queue(pipeline: Pipeline, preferences: list[MarketingPreference]) -> None:
            for preference in preferences:
                self._windows.queue_marketing_preference(pipeline, preference.key, preference.opted_out,
                                                         preference.at)
        return await self._restore_pages(token, self._preferences.every_preference(BATCH), queue)

    async def _restore_broadcast_replies(self, token: str) -> int:
        now = self._clock.now()

        def queue(pipeline: Pipeline, latest: list[tuple[ConversationKey, str, datetime]]) -> None:
            for key, message_id, sent_at in latest:
                self._replies.restore(pipeline, key, message_id, sent_at, now)
        return await self._restore_pages(token, self._messages.latest_broadcast_messages(now - REPLY_WINDOW, BATCH),
                                         queue)

    async def _restore_threads(self, token: str) -> int:
        def queue(pipeline: Pipeline, owners: list[dict[str, Any]]) -> None:
            self._windows.queue_threads(pipeline, [
                (ConversationKey.parse(doc["_id"]),
                 ThreadFacts(doc["status"], "agent" if doc.get("agent") else None, doc.get("agent")),
                 doc["changed_at"]) for doc in owners])
        return await self._restore_pages(token, self._owners.every_owner(BATCH), queue)

    async def _restore_pages(self, token: str, pages: AsyncIterator[list[Page]],
                             queue: Callable[[Pipeline, list[Page]], None]) -> int:
        """Each page of what the database kept written in one pipeline, the lease renewed after each."""
        restored = 0
        async for page in pages:
            async with self._windows.pipeline() as pipeline:
                queue(pipeline, page)
                await pipeline.execute()
            restored += len(page)
            await self._renew(token)
        return restored

    async def _replay_topics(self, token: str) -> int:
        topics = {topic.name(self._namespace): topic for topic in REPLAYED}
        windows = WindowProjection(self._windows)
        replayed = 0
        async for records in self._replay(list(topics), BATCH):
            async with self._windows.pipeline() as pipeline:
                media = MediaProjection(MediaStore(pipeline, self._prefix))  # its writes onto the pipeline
                conversations = []
                for record in records:
                    topic = topics[record.topic]
                    event = _parsed(topic, record.value)
                    if event is None:
                        continue
                    if topic is INBOUND_MESSAGES:
                        windows.queue_message(pipeline, event)
                    elif topic is INBOUND_PREFERENCES:
                        self._windows.queue_marketing_preference(pipeline, event.conversation_key,
                                                                 event.opted_out, event.provider_timestamp)
                    elif topic is CONVERSATIONS_EVENTS:
                        conversations.append(event)
                    else:
                        await media.on_media_event(event)
                windows.queue_conversations_changed(pipeline, conversations)
                await pipeline.execute()
            replayed += len(records)
            await self._renew(token)
        return replayed

    async def _renew(self, token: str) -> None:
        if not await self._marker.renew_lease(token, LEASE_SECONDS):
            raise LeaseLost


def _parsed(topic: Topic, value: bytes | None) -> Any:
    """The event, or None for a record this version cannot read (the live consumer dead-lettered it already)."""
    try:
        return topic.parse(value or b"")
    except ValidationError:
        return None
