"""parley.inbound.messages.v1, a consumer batch at a time: each customer message's window facts and whether it
answers a broadcast message, in one Redis round trip for the whole batch (it was two per message). When the cache
lost its projections the answers are asked again once they are rebuilt (which broadcast each customer got is
restored from the database), so a reply during a rebuild still counts."""

from __future__ import annotations

from parley_common.events.inbound import MessageReceived
from parley_outbound.adapters.window_store import REBUILD_HOLD_SECONDS, WindowStore
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
            if asked:
                self._store.queue_rebuilt(pipeline)
            for event in events:
                self._windows.queue_message(pipeline, event)
            results = await pipeline.execute()  # an empty pipeline answers [] without a round trip
        answers = results[:len(asked)]
        if asked and not self._store.rebuilt(results[len(asked)]):
            answers = await self._answers_once_rebuilt(asked)
        await self._replies.on_answers(list(zip(asked, answers, strict=True)))

    async def _answers_once_rebuilt(self, asked: list[MessageReceived]) -> list[object]:
        """The cache lost which broadcast each customer got: asked again once the rebuild restored it (after
        REBUILD_HOLD_SECONDS the batch fails and is delivered again)."""
        await self._store.wait_rebuilt(REBUILD_HOLD_SECONDS)
        async with self._store.pipeline() as pipeline:
            for event in asked:
                self._replies.ask(pipeline, event)
            return list(await pipeline.execute())
