"""Redis: which broadcast message each customer last got (`outbound:broadcast-reply:<conversation key>` → message
id, kept REPLY_WINDOW), so a customer's next message counts as a reply to it without a database read per inbound
message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from parley_common.events.outbound import SendMessage
from parley_common.ids import ConversationKey

REPLY_WINDOW = timedelta(days=7)


class BroadcastReplies:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, key: ConversationKey) -> str:
        return f"{self._prefix}outbound:broadcast-reply:{key}"

    async def expect(self, commands: Sequence[SendMessage]) -> None:
        """Before the page is sent: an answer that beats our write of the outcome still counts."""
        async with self._redis.pipeline(transaction=False) as pipeline:
            for command in commands:
                pipeline.set(self._key(command.conversation_key), command.message_id, ex=REPLY_WINDOW)
            await pipeline.execute()

    def restore(self, pipeline: Pipeline, key: ConversationKey, message_id: str, sent_at: datetime,
                now: datetime) -> None:
        """A rebuild's restore of a customer's latest broadcast message, for the rest of its REPLY_WINDOW; never
        over one a page expected since (it is newer)."""
        left = REPLY_WINDOW - (now - sent_at)
        if left.total_seconds() >= 1:
            pipeline.set(self._key(key), message_id, ex=left, nx=True)

    def ask_answered(self, pipeline: Pipeline, key: ConversationKey) -> None:
        """Queue the question: which broadcast message does this customer's message answer? Its answer in the
        pipeline's results is the message id, or None."""
        pipeline.get(self._key(key))
