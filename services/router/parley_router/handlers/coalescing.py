"""Conversations queued at about the same time are offered together.

A consumer batch is handled concurrently, one task per conversation key; each new queued conversation used
to run its own dispatch (one snapshot of presence and capacity, one plan). Here the first request of a tenant
starts a dispatch and every request that arrives while it runs joins the next one, so a burst of N
conversations costs a few plans instead of N, and each caller still returns only once its conversation was
planned (offsets are committed after the offer, as before)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from parley_router.domain.conversation import Conversation

Dispatch = Callable[[str, Sequence[Conversation]], Awaitable[int]]


class _Round:
    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class DispatchCoalescer:
    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._next: dict[str, _Round] = {}
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def offer(self, conv: Conversation) -> None:
        """Returns when a dispatch that included `conv` finished (raises what that dispatch raised)."""
        tenant_id = conv.tenant_id
        round_ = self._next.get(tenant_id) or self._next.setdefault(tenant_id, _Round())
        round_.conversations[conv.id] = conv  # a later version of the same conversation replaces the earlier
        if tenant_id not in self._running:
            self._running.add(tenant_id)
            task = asyncio.create_task(self._run(tenant_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.shield(round_.done)  # one caller giving up must not cancel the others' round

    async def _run(self, tenant_id: str) -> None:
        try:
            await asyncio.sleep(0)  # requests made in the same tick join this round
            while (round_ := self._next.pop(tenant_id, None)) is not None:
                try:
                    await self._dispatch(tenant_id, list(round_.conversations.values()))
                except asyncio.CancelledError:
                    round_.done.cancel()  # its callers are not left waiting
                    raise
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the round (redelivery)
                    round_.done.set_exception(exc)
                else:
                    round_.done.set_result(None)
        finally:
            self._running.discard(tenant_id)
