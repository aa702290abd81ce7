"""Redis: the window projection (last customer message per conversation key in provider time, free entry point,
Viber subscription, marketing opt-out) and blocked identities, kept from other services' events. One hash per
conversation key.

Redis because every send reads it (sub-millisecond; the send path must not queue on the database). It is a
projection: production runs Redis with AOF, and it can be rebuilt by replaying parley.inbound.messages.v1
(its 7-day retention covers the longest window, HUMAN_AGENT's 7 days), parley.inbound.preferences.v1 and
parley.contacts.events.v1."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from parley_common.ids import ConversationKey
from parley_outbound.domain.email_thread import MAX_REFERENCES, EmailThread
from parley_outbound.domain.threads import ThreadFacts
from parley_outbound.domain.window import WindowFacts

# KEYS[1] the hash; ARGV: provider time (µs), free entry ('1'/'0'), subscribed ('1'/'0'/'').
# Webhooks arrive late and out of order: keep the latest time only.
_CUSTOMER_MESSAGE = """
local at = tonumber(ARGV[1])
if at > tonumber(redis.call('HGET', KEYS[1], 'last') or '0') then redis.call('HSET', KEYS[1], 'last', at) end
if ARGV[2] == '1' and at > tonumber(redis.call('HGET', KEYS[1], 'fe') or '0') then
  redis.call('HSET', KEYS[1], 'fe', at)
  redis.call('HDEL', KEYS[1], 'fep')
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'sub', ARGV[3]) end
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


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1_000_000, UTC) if value else None


class WindowStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._marketing = redis.register_script(_MARKETING)

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

    def queue_subscription(self, pipeline: Pipeline, key: ConversationKey, subscribed: bool) -> None:
        pipeline.hset(self._key(key), "sub", "1" if subscribed else "0")

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

    async def set_blocked(self, key: ConversationKey, blocked: bool) -> None:
        await self._redis.hset(self._key(key), "blocked", "1" if blocked else "0")

    async def facts(self, key: ConversationKey) -> WindowFacts:
        return _window_facts(await self._fields(key))

    async def views(self, keys: list[ConversationKey]) -> list[tuple[WindowFacts, ThreadFacts]]:
        """Window and thread facts of many conversations in one round trip (a pipeline of one read each)."""
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipeline:
            for key in keys:
                pipeline.hgetall(self._key(key))
            rows = await pipeline.execute()
        views = []
        for raw in rows:
            fields = {str(name): str(value) for name, value in raw.items()}
            views.append((_window_facts(fields), _thread_facts(fields)))
        return views

    async def _fields(self, key: ConversationKey) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key(key))  # decode_responses: str keys and values
        return {str(name): str(value) for name, value in raw.items()}

    async def set_threads(self, threads: Sequence[tuple[ConversationKey, ThreadFacts]]) -> None:
        """The router's view of conversations (parley.conversations.events.v1), a consumer batch in one round trip;
        latest state wins (the caller passes one per conversation, or them in order)."""
        if not threads:
            return
        async with self.pipeline() as pipeline:
            for key, thread in threads:
                pipeline.hset(self._key(key), mapping={"t_status": thread.status or "",
                                                       "t_kind": thread.assignee_kind or "",
                                                       "t_id": thread.assignee_id or ""})
            await pipeline.execute()

    async def thread(self, key: ConversationKey) -> ThreadFacts:
        return _thread_facts(await self._fields(key))


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
