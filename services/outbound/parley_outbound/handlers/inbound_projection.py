"""parley.inbound.messages.v1, a consumer batch at a time: each customer message's window facts and whether it
answers a broadcast message, in one Redis round trip for the whole batch (it was two per message)."""

from __future__ import annotations

from parley_common.events.inbound import MessageReceived
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.handlers.broadcast_projections import ReplyProjection
from parley_outbound.handlers.projections import WindowProjection


class InboundMessagesProjection:
    def __init__(self, store: WindowStore, windows: WindowProjection, replies: ReplyProjection) -> None:
        self._store = store
        self._windows = windows
        self._replies = replies

    async def on_batch(self, events: list[MessageReceived]) -> None:
        """In the batch's order, so a later message of a conversation is applied after an earlier one."""
        async with self._store.pipeline() as pipeline:
            asked = [event for event in events if self._replies.ask(pipeline, event)]
            for event in events:
                self._windows.queue_message(pipeline, event)
            results = await pipeline.execute()  # an empty pipeline answers [] without a round trip
        await self._replies.on_answers(list(zip(asked, results[:len(asked)], strict=True)))
