"""Running broadcasts: every replica claims due broadcasts under a lease, resolves the audience into recipient
documents (page by page), then sends them a page at a time through the send pipeline's broadcast lane.

Crash safety: each recipient's message id is derived from the broadcast and the contact, the pipeline records
`sending` before the provider call, and the cursor only moves past pages that went through the pipeline. A runner
killed at any point leaves a lease that expires; whoever claims the broadcast next starts again at the cursor:
recipients already stored are not sent again (a message left `sending` fails as send_outcome_unknown, as for any
send). Memory stays flat: at most `pages in flight` pages of recipients are held at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from datetime import timedelta
from typing import Any

import structlog

from parley_common.clock import Clock
from parley_common.events.common import ChannelType, SenderKind
from parley_common.events.outbound import Sender as MessageSender
from parley_common.events.outbound import SendMessage, TemplateContent
from parley_common.mongo import read_stored
from parley_common.tasks import running
from parley_outbound.adapters.broadcast_replies import BroadcastReplies
from parley_outbound.adapters.broadcasts_repo import BroadcastRepository
from parley_outbound.adapters.ratelimit import Lane
from parley_outbound.domain.broadcasts import BroadcastState, message_id_for
from parley_outbound.handlers.broadcast_audience import AudienceResolver, BroadcastPlan, Candidate
from parley_outbound.handlers.broadcast_models import BroadcastModel, to_plan
from parley_outbound.handlers.send_batches import SendBatches
from parley_outbound.handlers.sending import Sender
from parley_outbound.settings import OutboundSettings

log = structlog.get_logger(__name__)
BROADCASTS_AT_ONCE = 4  # per replica


class BroadcastRunner:
    def __init__(self, *, repo: BroadcastRepository, resolver: AudienceResolver, sender: Sender,
                 replies: BroadcastReplies, clock: Clock, settings: OutboundSettings) -> None:
        self._repo = repo
        self._resolver = resolver
        self._sender = sender
        self._replies = replies
        self._clock = clock
        self._page = settings.broadcast_page_records
        self._in_flight = settings.broadcast_pages_in_flight
        self._lease = timedelta(seconds=settings.broadcast_lease_seconds)
        self._lane = SendBatches(sender, settings.broadcast_send_concurrency, settings.broadcast_write_chunk_records,
                                 Lane.BULK, chunks_at_once=settings.broadcast_chunks_at_once)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._poll = settings.broadcast_poll_seconds
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A broadcast was created or resumed here: look for work now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Claim due broadcasts: at each poll (scheduled starts, leases of dead runners), when woken, and again
        straight after a claim (several may be due)."""
        while True:
            doc = None
            if len(self._running) < BROADCASTS_AT_ONCE:
                now = self._clock.now()
                doc = await self._repo.claim_due(self.owner, now, now + self._lease)
            if doc is not None:
                self._start(doc)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    def _start(self, doc: dict[str, Any]) -> None:
        broadcast_id = str(doc["_id"])
        task = asyncio.create_task(self._run(doc))
        self._running[broadcast_id] = task
        task.add_done_callback(lambda _: self._finished(broadcast_id))

    def _finished(self, broadcast_id: str) -> None:
        self._running.pop(broadcast_id, None)
        self._wake.set()  # room for another

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _run(self, doc: dict[str, Any]) -> None:
        broadcast_id = doc["_id"]
        try:
            async with running(self._keep_lease(broadcast_id)):
                plan = to_plan(read_stored(BroadcastModel, doc["definition"]), doc["tenant_id"],
                               ChannelType(doc["channel_type"]))
                if (doc.get("resolved") or await self._resolve(doc, plan)) and await self._send(doc):
                    await self._repo.complete(broadcast_id, self.owner, self._clock.now())
                    log.info("broadcast_completed", broadcast_id=broadcast_id)
                    return
        except Exception:  # the run's or its lease keeper's
            log.exception("broadcast_run_failed", broadcast_id=broadcast_id)  # claimed again once the lease ends
            return
        await self._repo.release(broadcast_id, self.owner)  # paused or cancelled: a resume claims it again

    async def _keep_lease(self, broadcast_id: str) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            await self._still_running(broadcast_id)

    async def _still_running(self, broadcast_id: str) -> bool:
        state = await self._repo.renew(broadcast_id, self.owner, self._clock.now() + self._lease)
        return state == BroadcastState.RUNNING.value

    async def _resolve(self, doc: dict[str, Any], plan: BroadcastPlan) -> bool:
        """Write the recipients (idempotent ids); False when paused or cancelled meanwhile."""
        broadcast_id = doc["_id"]
        async for candidates in self._resolver.pages(plan, self._page):
            if not await self._still_running(broadcast_id):
                return False
            await self._repo.add_recipients([_recipient_doc(broadcast_id, plan.tenant_id, c) for c in candidates])
        total, skipped = await self._repo.resolve_counts(broadcast_id)
        await self._repo.resolved(broadcast_id, self.owner, total, skipped)
        log.info("broadcast_resolved", broadcast_id=broadcast_id, recipients=total, skipped=sum(skipped.values()))
        return True

    async def _send(self, doc: dict[str, Any]) -> bool:
        """Pages from the cursor on, a few in flight; True when every recipient went through the pipeline."""
        broadcast_id = doc["_id"]
        in_flight: deque[tuple[str, asyncio.Task[None]]] = deque()
        pages = self._repo.to_send(broadcast_id, doc.get("cursor"), self._page)
        try:
            finished = True
            async for page in pages:
                if not await self._still_running(broadcast_id):
                    finished = False
                    break
                in_flight.append((page[-1]["_id"], asyncio.create_task(self._send_page(doc, page))))
                while len(in_flight) >= self._in_flight or (in_flight and in_flight[0][1].done()):
                    await self._settle(broadcast_id, in_flight.popleft())
            while in_flight:
                await self._settle(broadcast_id, in_flight.popleft())
        finally:
            await pages.aclose()
            for _, task in in_flight:
                task.cancel()
        return finished

    async def _settle(self, broadcast_id: str, page: tuple[str, asyncio.Task[None]]) -> None:
        last, task = page
        await task
        await self._repo.advance(broadcast_id, self.owner, last)

    async def _send_page(self, doc: dict[str, Any], page: list[dict[str, Any]]) -> None:
        now = self._clock.now()
        channel_type = ChannelType(doc["channel_type"])
        commands = [SendMessage(
            occurred_at=now, tenant_id=doc["tenant_id"], correlation_id=doc["_id"], channel_id=r["channel_id"],
            external_user_id=r["external_user_id"], message_id=r["message_id"], channel_type=channel_type,
            sender=MessageSender(kind=SenderKind.SYSTEM), content=read_stored(TemplateContent, r["content"]),
            broadcast_id=doc["_id"]) for r in page]
        await self._replies.expect(commands)
        await self._lane.handle(commands)


def _recipient_doc(broadcast_id: str, tenant_id: str, candidate: Candidate) -> dict[str, Any]:
    content = candidate.content
    return {"_id": f"{broadcast_id}|{candidate.contact_id}", "broadcast_id": broadcast_id, "tenant_id": tenant_id,
            "contact_id": candidate.contact_id, "channel_id": candidate.channel_id,
            "external_user_id": candidate.external_user_id,
            "message_id": message_id_for(broadcast_id, candidate.contact_id),
            "skip_reason": candidate.skip_reason.value if candidate.skip_reason else None,
            "skip_detail": candidate.skip_detail,
            "content": content.model_dump(mode="json") if content is not None else None}
