"""The send consumer, a consumer batch at a time (parley.outbound.requests.v1).

Per batch: one query loads the messages stored already (HTTP accepts them as `queued`), one Redis pipeline reads
every conversation's window and thread, then ONE bulk write records `sending` for the whole batch (new commands
inserted, `queued` ones moved; refusals and outcome-unknown failures in the same write), the providers are called
concurrently (different conversations at once, one conversation in order, bounded by
PARLEY_OUTBOUND_SEND_CONCURRENCY), ONE bulk write records the outcomes, and the events are published concurrently.

The rules of the single-message pipeline hold per message: the policy is decided from facts read at the start of
the batch, moments before the calls; `sending` is stored before any call of the batch, so after a crash the
redelivered batch (or the reconcile at start) fails every message still `sending` as send_outcome_unknown and
sends none twice. A crash therefore costs the batch in flight, never a duplicate. A provider call that crashes
(an adapter bug) fails only its own message, as outcome-unknown."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import structlog

from parley_common.channels import AnyChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import ProviderError
from parley_common.events.outbound import SavedReplyContent, SendMessage
from parley_common.ids import ConversationKey
from parley_common.mongo import read_stored
from parley_outbound.adapters.messages_repo import Move
from parley_outbound.adapters.providers.base import ProviderFailure
from parley_outbound.adapters.ratelimit import Lane
from parley_outbound.adapters.window_store import REBUILD_HOLD_SECONDS
from parley_outbound.domain.status import State
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import Decision, PricingCategory
from parley_outbound.handlers.updates import message_doc

if TYPE_CHECKING:
    from parley_outbound.handlers.sending import Sender, TemplateReads, View

log = structlog.get_logger(__name__)
UNKNOWN_OUTCOME = "send_outcome_unknown"
T = TypeVar("T")
LOOKUPS_AT_ONCE = 32  # template, media, saved reply and idempotency reads of one batch in flight


@dataclass
class _Step:
    """What the batch does with one command: a new document or a move of the stored one, then maybe a send."""

    command: SendMessage
    doc: dict[str, Any]
    insert: bool = False
    move: Move | None = None
    event: State | None = None  # published once the first write stored the step
    reason: str | None = None
    decision: Decision | None = None  # set when the message goes to its provider
    channel: AnyChannel | None = None
    announced_again: bool = False  # stored sent, failed or refused already: only announced (again)


@dataclass
class _Outcome:
    step: _Step
    at: datetime
    provider_message_id: str | None = None
    reason: str | None = None
    error: ProviderError | None = None
    fields: dict[str, Any] = field(default_factory=dict)


class SendBatches:
    """One lane of the send pipeline: one-to-one messages (the requests topic) or broadcasts, each with its own
    provider-call slots, so a broadcast's calls waiting for tokens never hold the slots an agent's reply needs."""

    def __init__(self, sender: Sender, concurrency: int, chunk_size: int, lane: Lane = Lane.PRIORITY,
                 chunks_at_once: int | None = None) -> None:
        self._sender = sender
        self._lane = lane
        # the broadcast lane bounds its chunks in flight: each writes to the database, where a one-to-one
        # message's writes would otherwise queue behind dozens of them
        self._chunks = asyncio.Semaphore(chunks_at_once) if chunks_at_once else None
        self._chunk_size = chunk_size
        self._slots = asyncio.Semaphore(concurrency)
        self._lookups = asyncio.Semaphore(LOOKUPS_AT_ONCE)

    async def handle(self, commands: list[SendMessage], known: dict[str, dict[str, Any]] | None = None) -> None:
        """The consumer batch in chunks handled at once, so one chunk's database writes overlap another's provider
        calls; all commands of one conversation stay in one chunk, in order."""
        first_of: dict[str, SendMessage] = {}
        for command in commands:  # a command redelivered into the same batch counts once
            first_of.setdefault(command.message_id, command)
        await _all_then_raise([self._bounded_chunk(chunk, known or {})
                               for chunk in _chunks(list(first_of.values()), self._chunk_size)])

    async def _bounded_chunk(self, unique: list[SendMessage], known: dict[str, dict[str, Any]]) -> None:
        if self._chunks is None:
            await self._handle_chunk(unique, known)
            return
        async with self._chunks:
            await self._handle_chunk(unique, known)

    async def _handle_chunk(self, unique: list[SendMessage], known: dict[str, dict[str, Any]]) -> None:
        sender = self._sender
        stored = dict(known or {})
        stored.update(await sender.messages.get_many([c.message_id for c in unique if c.message_id not in stored]))
        # the cache lost the window facts: held while they are rebuilt, then the batch is redelivered (never refused)
        views = await sender.projections.views_once_rebuilt([command.conversation_key for command in unique],
                                                             REBUILD_HOLD_SECONDS)
        templates: TemplateReads = {}  # one read per template in the chunk
        planned = await asyncio.gather(*(self._plan(command, stored.get(command.message_id), view, templates)
                                         for command, view in zip(unique, views, strict=True)))
        steps = [step for step in planned if step is not None and not step.announced_again]
        again = [step for step in planned if step is not None and step.announced_again]
        written = await sender.messages.write_batch([s.doc for s in steps if s.insert],
                                                    [s.move for s in steps if s.move is not None])
        done = [s for s in steps if s.doc["_id"] in (written.inserted if s.insert else written.moved)]
        first_events = asyncio.gather(*(self._publish_first(step) for step in [*done, *again]
                                        if step.event is not None))
        try:
            outcomes = await self._send_all([step for step in done if step.decision is not None])
            recorded = await self._record(outcomes)
        finally:
            await first_events  # `queued` goes out before the outcome of the same message
        await self._announce([*recorded, *(_stored_outcome(step) for step in again if step.event is None)])
        log.info("send_batch", records=len(unique), stored=len(done), sent=sum(o.reason is None for o in recorded),
                 failed=sum(o.reason is not None for o in recorded))

    # --- planning ---------------------------------------------------------------------------------------------
    async def _plan(self, command: SendMessage, doc: dict[str, Any] | None, view: View,
                    templates: TemplateReads) -> _Step | None:
        if doc is not None:
            return await self._plan_stored(command, doc, view) if doc["tenant_id"] == command.tenant_id else None
        sender = self._sender
        async with self._lookups:
            if command.idempotency_key:
                owner = await sender.messages.claim(command.tenant_id, command.idempotency_key, command.message_id)
                if owner != command.message_id:
                    return None  # the same key was sent as another message
            evaluation = await sender.evaluate(command, start_sending=True, view=view, templates=templates)
        doc = message_doc(evaluation.command, evaluation.state, sender.clock.now(), evaluation.decision,
                          evaluation.reason, evaluation.rendered)
        sending = evaluation.state is State.SENDING
        return _Step(evaluation.command, doc, insert=True, event=State.QUEUED if sending else evaluation.state,
                     reason=evaluation.reason, decision=evaluation.verdict if sending else None,
                     channel=sender.channel(evaluation.command) if sending else None)

    async def _plan_stored(self, command: SendMessage, doc: dict[str, Any], view: View) -> _Step | None:
        sender = self._sender
        state, now = State(doc["state"]), sender.clock.now()
        if state is State.SENDING:  # we crashed between the provider call and recording it: never send twice
            return self._refuse(command, doc, State.SENDING, State.FAILED, UNKNOWN_OUTCOME, now)
        if state in (State.SENT, State.FAILED):
            # its outcome was stored, and its announcement may not have gone out (a failure or a stop after the
            # write): the outcome, its after-send action and the statuses parked for it go out again, under the
            # same event ids (parley_outbound.handlers.updates)
            return _Step(command, doc, announced_again=True)
        if state is State.REFUSED:
            return _Step(command, doc, event=State.REFUSED, reason=doc.get("reason"), announced_again=True)
        if state is not State.QUEUED:
            return None
        if isinstance(command.content, SavedReplyContent):  # deliver the text rendered when it was accepted
            command = read_stored(SendMessage, doc["command"])
        try:
            channel = sender.channel(command)
        except InvalidRequest as invalid:  # the channel was removed while the message waited
            return self._refuse(command, doc, State.QUEUED, State.REFUSED, invalid.code, now)
        category = (doc.get("decision") or {}).get("pricing_category")
        decision = sender.decide(command, PricingCategory(category) if category else None, view[0])
        if not decision.allowed:  # e.g. blocked, or the window closed while it waited
            reason = await sender.refusal_code(command, decision)
            return self._refuse(command, doc, State.QUEUED, State.REFUSED, reason, now)
        move = Move(doc["tenant_id"], doc["_id"], State.QUEUED, State.SENDING, now)
        return _Step(command, doc, move=move, decision=decision, channel=channel)

    @staticmethod
    def _refuse(command: SendMessage, doc: dict[str, Any], expected: State, new: State, reason: str,
                now: datetime) -> _Step:
        move = Move(doc["tenant_id"], doc["_id"], expected, new, now, {"reason": reason})
        return _Step(command, doc, move=move, event=new, reason=reason)

    # --- provider calls ---------------------------------------------------------------------------------------
    async def _send_all(self, steps: list[_Step]) -> list[_Outcome]:
        conversations: dict[ConversationKey, list[_Step]] = {}
        for step in steps:
            conversations.setdefault(step.command.conversation_key, []).append(step)
        results = await _all_then_raise([self._in_order(group) for group in conversations.values()])
        return [outcome for group in results for outcome in group]

    async def _in_order(self, steps: list[_Step]) -> list[_Outcome]:
        async with self._slots:
            return [await self._send(step) for step in steps]

    async def _send(self, step: _Step) -> _Outcome:
        sender = self._sender
        assert step.decision is not None and step.channel is not None
        message = sender.outgoing_for(step.doc, step.command, step.decision)
        try:
            result = await sender.delivery.send(step.channel, message, self._lane)
        except ProviderFailure as failure:
            error = ProviderError(code=failure.code, title=failure.outcome.reason, detail=failure.detail)
            return _Outcome(step, sender.clock.now(), reason=failure.outcome.reason, error=error,
                            fields={"reason": failure.outcome.reason, "error": error.model_dump()})
        except Exception:  # an adapter bug: whether the provider got it is unknown, so it is never retried
            log.exception("provider_call_crashed", message_id=step.command.message_id)
            return _Outcome(step, sender.clock.now(), reason=UNKNOWN_OUTCOME, fields={"reason": UNKNOWN_OUTCOME})
        return _Outcome(step, sender.clock.now(), provider_message_id=result.provider_message_id,
                        fields={"provider_message_id": result.provider_message_id})

    # --- outcomes ---------------------------------------------------------------------------------------------
    async def _record(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        moves = [Move(o.step.doc["tenant_id"], o.step.doc["_id"], State.SENDING,
                      State.FAILED if o.reason else State.SENT, o.at, o.fields) for o in outcomes]
        written = await self._sender.messages.write_batch([], moves)
        return [outcome for outcome in outcomes if outcome.step.doc["_id"] in written.moved]

    async def _publish_first(self, step: _Step) -> None:
        assert step.event is not None
        await self._sender.updates.state_changed(step.doc, step.event, self._sender.clock.now(), reason=step.reason,
                                                 command=step.command)

    async def _announce(self, recorded: list[_Outcome]) -> None:
        """Outcome events, after-send actions and free entry windows (one round trip) at once; then statuses that
        beat the write."""
        sender = self._sender
        work, free_entry_windows = [], []
        for outcome in recorded:
            step = outcome.step
            work.append(sender.updates.state_changed(
                step.doc, State.FAILED if outcome.reason else State.SENT, outcome.at, reason=outcome.reason,
                provider_message_id=outcome.provider_message_id, error=outcome.error, command=step.command))
            if outcome.reason is not None:
                continue
            opens_free_entry = step.decision.opens_free_entry_window if step.decision is not None else (
                step.doc.get("decision") or {}).get("opens_free_entry_window")
            if opens_free_entry:
                free_entry_windows.append((step.command.conversation_key, outcome.at))
            if step.command.channel_type is not ChannelType.EMAIL:  # email goes out "closed": no thread to act on
                work.append(sender.updates.after_send(step.command, outcome.at))
        await asyncio.gather(*work, sender.projections.start_free_entry_windows(free_entry_windows))
        await self._replay_parked([o for o in recorded if o.provider_message_id is not None])

    async def _replay_parked(self, sent: list[_Outcome]) -> None:
        sender = self._sender
        if sender.find_parked is None or sender.apply_parked_statuses is None:
            return
        by_channel: dict[tuple[str, str], list[str]] = {}
        for outcome in sent:
            assert outcome.provider_message_id is not None
            key = (outcome.step.doc["tenant_id"], outcome.step.doc["channel_id"])
            by_channel.setdefault(key, []).append(outcome.provider_message_id)
        for (tenant_id, channel_id), provider_ids in by_channel.items():
            for provider_id in await sender.find_parked(tenant_id, channel_id, provider_ids):
                await sender.apply_parked_statuses(tenant_id, channel_id, provider_id)


def _stored_outcome(step: _Step) -> _Outcome:
    """The send's outcome as its document stored it: sent (then maybe failed, as the provider told later), or
    failed with the reason the send stored."""
    doc = step.doc
    if State.SENT.value in doc["history"]:
        return _Outcome(step, doc["history"][State.SENT.value], provider_message_id=doc.get("provider_message_id"))
    error = doc.get("error")
    return _Outcome(step, doc["history"][State.FAILED.value], reason=doc.get("reason") or UNKNOWN_OUTCOME,
                    error=ProviderError.model_validate(error) if error else None)


async def _all_then_raise(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Like gather, but every part runs to its end before the first failure is raised: a provider call in flight
    when another part failed is answered and its outcome recorded (cancelled, its message would stay `sending` and
    the redelivered batch fail it as outcome-unknown, though the provider may have it). The batch is then
    redelivered, with no part of it still writing, and finds the finished ones done."""
    results = await asyncio.gather(*work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


def _chunks(commands: list[SendMessage], size: int) -> list[list[SendMessage]]:
    """Up to `size` commands per chunk, whole conversations only (a long one may make its chunk bigger)."""
    conversations: dict[ConversationKey, list[SendMessage]] = {}
    for command in commands:
        conversations.setdefault(command.conversation_key, []).append(command)
    chunks: list[list[SendMessage]] = [[]]
    for group in conversations.values():
        if chunks[-1] and len(chunks[-1]) + len(group) > size:
            chunks.append([])
        chunks[-1].extend(group)
    return [chunk for chunk in chunks if chunk]
