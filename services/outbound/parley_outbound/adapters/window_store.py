"""Redis: the window projection (last customer message per conversation key in provider time, free entry point,
Viber subscription, marketing opt-out) and blocked identities, kept from other services' events. One hash per
conversation key.

Redis because every send reads it (sub-millisecond; the send path must not queue on the database). Redis is a
cache: after a restart with nothing kept the projection is rebuilt (handlers/projection_rebuild.py) by replaying
parley.inbound.messages.v1 (its 7-day retention covers the longest window, HUMAN_AGENT's 7 days),
parley.inbound.preferences.v1 and parley.conversations.events.v1 (7 days), and the blocked identities and thread
facts from outbound's own MongoDB (audience, visibility owners). Until then every read raises
ProjectionsRebuilding: the marker (adapters/projection_marker.py) is read in the same pipeline as the facts, so
knowing costs no round trip. Facts written while a rebuild replays older
events keep the latest in provider (or event) time, so the replay and the live consumers are harmless together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from parley_common.batching import TickBatcher
from parley_common.ids import ConversationKey
from parley_outbound.adapters.projection_marker import READY, ProjectionMarker, ProjectionsRebuilding
from parley_outbound.domain.email_thread import MAX_REFERENCES, EmailThread
from parley_outbound.domain.threads import ThreadFacts
from parley_outbound.domain.window import WindowFacts

# KEYS[1] the hash; ARGV: provider time (µs), free entry ('1'/'0'), subscribed ('1'/'0'/'').
# Webhooks arrive late and out of order (and a rebuild replays old ones): keep the latest time only.
_CUSTOMER_MESSAGE = """
local at = tonumber(ARGV[1])
if at > tonumber(redis.call('HGET', KEYS[1], 'last') or '0') then redis.call('HSET', KEYS[1], 'last', at) end
if ARGV[2] == '1' and at > tonumber(redis.call('HGET', KEYS[1], 'fe') or '0') then
  redis.call('HSET', KEYS[1], 'fe', at)
  redis.call('HDEL', KEYS[1], 'fep')
end
if ARGV[3] ~= '' and at >= tonumber(redis.call('HGET', KEYS[1], 'sub_at') or '0') then
  redis.call('HSET', KEYS[1], 'sub', ARGV[3], 'sub_at', at)
end
return 1
"""
# KEYS[1] the hash; ARGV: the field, its value, the event's time (µs), or '' to set it only where no event has
# (a rebuild's restore from the database: whatever the live consumers wrote since is newer). Latest wins.
_LATEST = """
local stamp = ARGV[1] .. '_at'
local at = ARGV[3]
if at == '' then
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
  return 1
end
if tonumber(at) >= tonumber(redis.call('HGET', KEYS[1], stamp) or '0') then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], stamp, at)
end
return 1
"""

# KEYS[1] the hash; ARGV: provider time (µs), opted out ('1'/'0'). The latest preference wins.
_MARKETING = """
local at = tonumber(ARGV[1])
if at >= tonumber(redis.call('HGET', KEYS[1], 'mkt_at') or '0') then
  redis.call('HSET', KEYS[1], 'mkt', ARGV[2], 'mkt_at', at)
end
return 1
"""

# KEYS[1] the hash; ARGV: status, assignee kind, assignee id, the change's time (µs). The router's latest state
# wins: a rebuild replays the conversations topic while the live consumer writes newer changes.
_THREAD = """
local at = tonumber(ARGV[4])
if at >= tonumber(redis.call('HGET', KEYS[1], 't_at') or '0') then
  redis.call('HSET', KEYS[1], 't_status', ARGV[1], 't_kind', ARGV[2], 't_id', ARGV[3], 't_at', at)
end
return 1
"""

REBUILT_POLL_SECONDS = 0.25
# How long a consumer's batch (a send, a broadcast page) waits for rebuilt facts before it fails and comes again.
REBUILD_HOLD_SECONDS = 20.0


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1_000_000, UTC) if value else None


class WindowStore:
    def __init__(self, redis: Redis, prefix: str, on_lost: Callable[[], None] | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._on_lost = on_lost  # told when a read finds the projections lost (the rebuild looks at once)
        self._marketing = redis.register_script(_MARKETING)
        self._marker = ProjectionMarker(redis, prefix).key
        # the sends accepted together read their facts in one round trip (parley_common.batching)
        self._views: TickBatcher[ConversationKey, tuple[WindowFacts, ThreadFacts]] = TickBatcher(self.views)

    def _key(self, key: ConversationKey) -> str:
        return f"{self._prefix}outbound:window:{key}"

    def pipeline(self) -> Pipeline:
        """One round trip for the writes of a consumer batch (and what other projections add to it)."""
        return self._redis.pipeline(transaction=False)

    async def record_customer_message(self, key: ConversationKey, at: datetime, free_entry: bool,
                                      subscribed: bool | None) -> None:
        async with self.pipeline() as pipeline:
            self.queue_customer_message(pipeline, key, at, free_entry, subscribed)
            await pipeline.execute()

    def queue_customer_message(self, pipeline: Pipeline, key: ConversationKey, at: datetime, free_entry: bool,
                               subscribed: bool | None) -> None:
        """EVAL, not the registered script: a script object in a pipeline asks SCRIPT EXISTS first, one more
        round trip per batch (the server caches the script body either way)."""
        flag = "" if subscribed is None else ("1" if subscribed else "0")
        pipeline.eval(_CUSTOMER_MESSAGE, 1, self._key(key), _micros(at), "1" if free_entry else "0", flag)

    def queue_subscription(self, pipeline: Pipeline, key: ConversationKey, subscribed: bool, at: datetime) -> None:
        pipeline.eval(_LATEST, 1, self._key(key), "sub", "1" if subscribed else "0", _micros(at))

    async def record_marketing_preference(self, key: ConversationKey, opted_out: bool, at: datetime) -> None:
        await self._marketing(keys=[self._key(key)], args=[_micros(at), "1" if opted_out else "0"])

    def queue_email(self, pipeline: Pipeline, key: ConversationKey, thread: EmailThread) -> None:
        """The customer's latest email (arrival order: a mail relay keeps no provider clock worth comparing)."""
        pipeline.hset(self._key(key), mapping={"em_id": thread.message_id,
                                               "em_refs": " ".join(thread.references[-MAX_REFERENCES:]),
                                               "em_subj": thread.subject or ""})

    async def start_free_entry_windows(self, started: Sequence[tuple[ConversationKey, datetime]]) -> None:
        """The free entry point windows a batch's sends opened, in one round trip (the first one stands)."""
        if not started:
            return
        async with self.pipeline() as pipeline:
            for key, at in started:
                pipeline.hsetnx(self._key(key), "fep", str(_micros(at)))
            await pipeline.execute()

    def queue_blocked_change(self, pipeline: Pipeline, key: ConversationKey, blocked: bool, at: datetime) -> None:
        pipeline.eval(_LATEST, 1, self._key(key), "blocked", "1" if blocked else "0", _micros(at))

    def queue_blocked(self, pipeline: Pipeline, key: ConversationKey) -> None:
        """A rebuild's restore from the database: blocked, unless an event said otherwise since (it is newer)."""
        pipeline.eval(_LATEST, 1, self._key(key), "blocked", "1", "")

    def queue_marketing_preference(self, pipeline: Pipeline, key: ConversationKey, opted_out: bool,
                                   at: datetime) -> None:
        pipeline.eval(_MARKETING, 1, self._key(key), _micros(at), "1" if opted_out else "0")

    async def facts(self, key: ConversationKey) -> WindowFacts:
        return (await self.views([key]))[0][0]

    async def views(self, keys: list[ConversationKey]) -> list[tuple[WindowFacts, ThreadFacts]]:
        """Window and thread facts of many conversations in one round trip (a pipeline of one read each, and the
        marker's); ProjectionsRebuilding when the cache lost them."""
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipeline:
            pipeline.get(self._marker)
            for key in keys:
                pipeline.hgetall(self._key(key))
            marker, *rows = await pipeline.execute()
        if marker != READY:
            if self._on_lost is not None:
                self._on_lost()
            raise ProjectionsRebuilding
        views = []
        for raw in rows:
            fields = {str(name): str(value) for name, value in raw.items()}
            views.append((_window_facts(fields), _thread_facts(fields)))
        return views

    async def view(self, key: ConversationKey) -> tuple[WindowFacts, ThreadFacts]:
        """`views` of one conversation, read with those asked in the same event-loop turn."""
        return await self._views.submit(key)

    async def views_once_rebuilt(self, keys: list[ConversationKey],
                                 within: float) -> list[tuple[WindowFacts, ThreadFacts]]:
        """`views`, holding up to `within` seconds while the projections are rebuilt (a consumer's batch: better
        late than refused); ProjectionsRebuilding after that."""
        deadline = time.monotonic() + within
        while True:
            try:
                return await self.views(keys)
            except ProjectionsRebuilding:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(REBUILT_POLL_SECONDS)  # the rebuild (maybe another replica's) sets the marker

    def queue_rebuilt(self, pipeline: Pipeline) -> None:
        """Ask, in a batch's pipeline, whether the projections are complete; `rebuilt` reads the answer."""
        pipeline.get(self._marker)

    def rebuilt(self, answer: object) -> bool:
        if answer == READY:
            return True
        if self._on_lost is not None:
            self._on_lost()
        return False

    async def wait_rebuilt(self, within: float) -> None:
        """Until the projections are rebuilt (maybe by another replica); ProjectionsRebuilding after `within` s."""
        deadline = time.monotonic() + within
        while not self.rebuilt(await self._redis.get(self._marker)):
            if time.monotonic() >= deadline:
                raise ProjectionsRebuilding
            await asyncio.sleep(REBUILT_POLL_SECONDS)

    async def set_threads(self, threads: Sequence[tuple[ConversationKey, ThreadFacts, datetime]]) -> None:
        """The router's view of conversations (parley.conversations.events.v1), a consumer batch in one round trip."""
        if not threads:
            return
        async with self.pipeline() as pipeline:
            self.queue_threads(pipeline, threads)
            await pipeline.execute()

    def queue_threads(self, pipeline: Pipeline,
                      threads: Sequence[tuple[ConversationKey, ThreadFacts, datetime]]) -> None:
        """Each conversation's state as of its change's time: the latest change wins, whatever order they come in."""
        for key, thread, at in threads:
            pipeline.eval(_THREAD, 1, self._key(key), thread.status or "", thread.assignee_kind or "",
                          thread.assignee_id or "", _micros(at))

def _window_facts(fields: dict[str, str]) -> WindowFacts:
    subscribed = fields.get("sub")
    return WindowFacts(
        last_customer_at=_moment(fields.get("last")),
        free_entry_at=_moment(fields.get("fe")),
        free_entry_window_started_at=_moment(fields.get("fep")),
        subscribed=None if subscribed is None else subscribed == "1",
        blocked=fields.get("blocked") == "1",
        marketing_opted_out=fields.get("mkt") == "1",
    )


def _thread_facts(fields: dict[str, str]) -> ThreadFacts:
    email = fields.get("em_id")
    return ThreadFacts(status=fields.get("t_status") or None, assignee_kind=fields.get("t_kind") or None,
                       assignee_id=fields.get("t_id") or None,
                       email=EmailThread(email, tuple(fields.get("em_refs", "").split()), fields.get("em_subj") or None)
                       if email else None)
