"""The send pipeline: accept a command (policy, idempotency, persist `queued`), then deliver it (policy again,
record `sending`, call the provider, record the outcome). HTTP and the requests topic both come through here,
so nothing the policy refuses is ever sent, whatever path it came by.

A command that arrives on the topic without an HTTP accept is stored directly as `sending` (it is published
as `queued`): one database write fewer on the hot path, and still recorded before the provider call. The topic
consumer works a batch at a time (handlers/send_batches.py); this module holds the checks and the single-message
steps (HTTP accept, reconcile at start)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import structlog

from parley_common.channels import AnyChannel, Channels
from parley_common.clock import Clock
from parley_common.events.common import ChannelType
from parley_common.events.inbound import ProviderError
from parley_common.events.outbound import EmailOptions, OutboundText, SavedReplyContent, SendMessage, TemplateContent
from parley_outbound import metrics
from parley_outbound.adapters.contact_fields import ContactFieldsStore
from parley_outbound.adapters.media_store import MediaStore
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.pending_messages import PendingMessages
from parley_outbound.adapters.projection_marker import ProjectionsRebuilding
from parley_outbound.adapters.saved_replies_repo import SavedReplyRepository
from parley_outbound.adapters.templates_repo import TemplateRepository
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.catch_up import read_soon
from parley_outbound.domain.attachments import check_attachment
from parley_outbound.domain.compose import attachment_of, intent_for, outgoing
from parley_outbound.domain.email_thread import EmailThread, reply_headers, reply_subject
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.saved_replies import applies_to, render_saved_reply
from parley_outbound.domain.status import State
from parley_outbound.domain.templates import render_template_content
from parley_outbound.domain.threads import ThreadFacts, held_by_another_agent
from parley_outbound.domain.validation import InvalidRequest, placeholders
from parley_outbound.domain.window import Decision, PricingCategory, Verdict, WindowFacts, decide
from parley_outbound.handlers.checks import check_command
from parley_outbound.handlers.delivery import Delivery
from parley_outbound.handlers.http_templates import to_domain
from parley_outbound.handlers.send_batches import UNKNOWN_OUTCOME, SendBatches
from parley_outbound.handlers.updates import UpdatePublisher, message_doc

log = structlog.get_logger(__name__)
# How long a send waits for an attachment's MediaStored (an upload answered a moment ago) before media_not_found.
MEDIA_CATCH_UP_SECONDS = 3.0
# How long a send waits for the thread to be projected as the sender's (an accept or a transfer answered a moment
# ago) before thread_held_by_another_agent.
THREAD_CATCH_UP_SECONDS = 2.0


@dataclass(frozen=True)
class Accepted:
    message_id: str
    state: State
    reason: str | None
    duplicate: bool = False
    decision: dict[str, Any] | None = None
    message: str | None = None  # why an invalid request was refused, for the API's answer
    field: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The verdict on a new command before it is stored: checks, templates, saved reply and window policy."""

    command: SendMessage  # as accepted: a saved reply rendered to text
    state: State
    reason: str | None
    decision: dict[str, Any]
    rendered: str | None = None
    verdict: Decision | None = None
    message: str | None = None
    field: str | None = None


ApplyParked = Callable[[str, str, str], Awaitable[None]]  # (tenant, channel, provider message id)
FindParked = Callable[[str, str, list[str]], Awaitable[set[str]]]  # (tenant, channel, provider ids) → parked ones
View = tuple[WindowFacts, ThreadFacts]
TemplateReads = dict[tuple[str, str, str, str], "asyncio.Future[dict[str, Any] | None]"]


class Sender:
    def __init__(self, *, messages: MessageRepository, projections: WindowStore,
                 templates: TemplateRepository, media: MediaStore, updates: UpdatePublisher,
                 saved_replies: SavedReplyRepository, contact_fields: ContactFieldsStore,
                 channels: Channels, delivery: Delivery, clock: Clock, media_base_url: str,
                 stuck_after: timedelta = timedelta(seconds=60),
                 templates_mandatory: frozenset[str] = frozenset(),
                 apply_parked_statuses: ApplyParked | None = None, find_parked: FindParked | None = None,
                 pending: PendingMessages, send_concurrency: int = 128, write_chunk: int = 100) -> None:
        self.messages = messages
        self.pending = pending
        self.projections = projections
        self.templates = templates
        self.media = media
        self.saved_replies = saved_replies
        self.contact_fields = contact_fields
        self.updates = updates
        self.channels = channels
        self.delivery = delivery
        self.clock = clock
        self.media_base_url = media_base_url.rstrip("/")
        self.stuck_after = stuck_after
        self.templates_mandatory = templates_mandatory
        self.apply_parked_statuses = apply_parked_statuses
        self.find_parked = find_parked
        self.batches = SendBatches(self, send_concurrency, write_chunk)

    async def handle_batch(self, commands: list[SendMessage]) -> None:
        """The requests-topic consumer: accept what HTTP did not accept yet, then deliver, a batch at a time."""
        await self.batches.handle(commands)

    async def deliver(self, command: SendMessage, doc: dict[str, Any]) -> None:
        """Deliver one stored message (the batch path with one record)."""
        await self.batches.handle([command], known={command.message_id: doc})

    async def accept(self, command: SendMessage, *, forward: bool = False) -> Accepted:
        """Policy and checks now; a refusal is stored and answered at once. With `forward` (the HTTP API) an
        accepted command goes to the send consumer, which stores it with its batch, and the answer waits only
        for Kafka to have it; without, it is stored here as `queued`."""
        if command.idempotency_key:
            owner = await self.messages.claim(command.tenant_id, command.idempotency_key, command.message_id)
            if owner != command.message_id:
                return await self._existing(command.tenant_id, owner)
        try:
            evaluation = await self.evaluate(command, start_sending=False)
        except ProjectionsRebuilding:  # answered retryable: the same key must work again
            if command.idempotency_key:
                await self.messages.release(command.tenant_id, command.idempotency_key, command.message_id)
            raise
        accepted = Accepted(command.message_id, evaluation.state, evaluation.reason, decision=evaluation.decision,
                            message=evaluation.message, field=evaluation.field)
        if forward and evaluation.state is State.QUEUED:
            await self._forward(evaluation)
            return accepted
        doc = message_doc(evaluation.command, evaluation.state, self.clock.now(), evaluation.decision,
                          evaluation.reason, evaluation.rendered)
        if not await self.messages.insert(doc):
            return await self._existing(command.tenant_id, command.message_id)
        await self.updates.state_changed(doc, evaluation.state, self.clock.now(), reason=evaluation.reason,
                                         command=evaluation.command)
        log.info("outbound_accepted", message_id=command.message_id, state=evaluation.state.value)
        return accepted

    async def _forward(self, evaluation: Evaluation) -> None:
        command = evaluation.command
        await self.pending.remember(command.tenant_id, command.message_id, {
            "message_id": command.message_id, "status": State.QUEUED.value, "reason": None,
            "provider_message_id": None, "channel_id": command.channel_id,
            "external_user_id": command.external_user_id, "decision": evaluation.decision,
            "sender": command.sender.model_dump(mode="json")})
        try:
            await self.updates.command(command)
        except BaseException:
            await self.pending.forget(command.tenant_id, command.message_id)  # never promised: no `queued` note
            raise

    async def view(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """GET /v1/messages/{id}: the stored message, or the accepted one the send consumer has not stored yet."""
        doc = await self.messages.get(tenant_id, message_id)
        if doc is None:
            return await self.pending.get(tenant_id, message_id)
        return {"message_id": doc["_id"], "status": doc["state"], "reason": doc.get("reason"),
                "provider_message_id": doc.get("provider_message_id"), "channel_id": doc["channel_id"],
                "external_user_id": doc["command"]["external_user_id"], "decision": doc.get("decision"),
                "sender": doc["command"]["sender"]}

    async def evaluate(self, command: SendMessage, *, start_sending: bool, view: View | None = None,
                       templates: TemplateReads | None = None) -> Evaluation:
        """Every check and the window policy, from the window/thread facts (read now unless given). `templates`:
        the template reads of a batch, shared (a broadcast's chunk reads its template once, not per recipient)."""
        if view is None:
            view = await self._view_soon(command)
        facts, thread = view
        try:
            self.channel(command)
            command = await self._render_saved_reply(command)
            check_command(command)
            self._check_thread(command, thread)
            self._check_template_mode(command)
            media_kind = await self._attachment(command)
            rendered, category = await self._template(command, templates)
        except InvalidRequest as invalid:
            return Evaluation(command, State.REFUSED, invalid.code, {}, message=invalid.message, field=invalid.field)
        decision = self.decide(command, category, facts)
        if decision.allowed:
            state, reason = (State.SENDING if start_sending else State.QUEUED), None
        else:
            state, reason = State.REFUSED, await self.refusal_code(command, decision)
        decision_fields = {**_decision_dict(decision), "media_kind": media_kind}
        if command.channel_type is ChannelType.EMAIL:
            command, decision_fields["email_headers"] = _threaded(command, thread.email)
        return Evaluation(command, state, reason, decision_fields, rendered, decision)

    async def reconcile(self) -> int:
        """At start: messages left `sending` by a crash fail as outcome-unknown (never re-sent)."""
        older_than = self.clock.now() - self.stuck_after
        stuck = await self.messages.stuck_sending(older_than)
        for doc in stuck:
            await self._move(doc, State.SENDING, State.FAILED, reason=UNKNOWN_OUTCOME)
        return len(stuck)

    def outgoing_for(self, doc: dict[str, Any], command: SendMessage, decision: Decision) -> Outgoing:
        media_id = attachment_of(command.content)
        media_url = f"{self.media_base_url}/v1/media/{media_id}/content" if media_id else None
        media_kind = (doc.get("decision") or {}).get("media_kind") or "document"
        headers = (doc.get("decision") or {}).get("email_headers") or {}
        return outgoing(command, decision, media_url, media_kind, text=doc.get("rendered_text"), headers=headers)

    async def record_sent(self, doc: dict[str, Any], provider_message_id: str) -> None:
        """Store the provider's id, then apply the statuses whose webhook beat this write (parked until now)."""
        await self._move(doc, State.SENDING, State.SENT, provider_message_id=provider_message_id)
        if self.apply_parked_statuses is not None:
            await self.apply_parked_statuses(doc["tenant_id"], doc["channel_id"], provider_message_id)

    def decide(self, command: SendMessage, category: PricingCategory | None, facts: WindowFacts) -> Decision:
        if command.channel_type is ChannelType.EMAIL:  # no window
            facts = WindowFacts(blocked=facts.blocked)
        decision = decide(intent_for(command, category), facts, self.clock.now())
        if not decision.allowed:
            metrics.WINDOW_REFUSALS.labels(command.channel_type.value, decision.reason.value).inc()
        return decision

    async def _view_soon(self, command: SendMessage) -> View:
        """The command's window and thread facts; read again for up to THREAD_CATCH_UP_SECONDS while they name
        another agent as the thread's holder: the router answers an agent's accept once its event is on the topic,
        and this projection of it follows a moment later — the reply typed right after accepting must not be
        refused for that (a thread another agent really holds is refused after the wait)."""
        async def read() -> View:
            return await self.projections.view(command.conversation_key)

        return await read_soon(read, lambda view: not held_by_another_agent(
            command.channel_type, command.sender.kind, command.sender.login, view[1]), THREAD_CATCH_UP_SECONDS)

    def _check_thread(self, command: SendMessage, thread: ThreadFacts) -> None:
        if held_by_another_agent(command.channel_type, command.sender.kind, command.sender.login, thread):
            raise InvalidRequest("thread_held_by_another_agent",
                                 f"the active thread is assigned to {thread.assignee_id}", "recipient")

    def _check_template_mode(self, command: SendMessage) -> None:
        """edna: on some channels templates are mandatory, whatever the window."""
        if command.channel_id in self.templates_mandatory and not isinstance(command.content, TemplateContent):
            raise InvalidRequest("template_required", "this channel sends approved templates only", "content")

    async def _attachment(self, command: SendMessage) -> str | None:
        """The provider's media kind for the attachment, after checking the channel accepts it."""
        media_id = attachment_of(command.content)
        if media_id is None:
            return None
        facts = await self.media.get_soon(command.tenant_id, media_id, MEDIA_CATCH_UP_SECONDS)
        return check_attachment(command.channel_type, facts, self.clock.now()).kind

    async def _template(self, command: SendMessage,
                        reads: TemplateReads | None) -> tuple[str | None, PricingCategory | None]:
        """The rendered text and pricing category of a template message (None, None for other content)."""
        content = command.content
        if not isinstance(content, TemplateContent):
            return None, None
        key = (command.tenant_id, command.channel_id, content.name, content.language)
        reads = {} if reads is None else reads
        if key not in reads:
            reads[key] = asyncio.ensure_future(self.templates.get(*key))
        doc = await reads[key]
        if doc is None:
            raise InvalidRequest("template_not_found",
                                 f"no template {content.name!r} in {content.language} on this channel", "content.name")
        template = to_domain(doc)
        return render_template_content(template, content), template.category

    async def _render_saved_reply(self, command: SendMessage) -> SendMessage:
        """A saved reply becomes the free-form text it renders to with the contact's custom fields."""
        content = command.content
        if not isinstance(content, SavedReplyContent):
            return command
        reply = await self.saved_replies.get(command.tenant_id, content.saved_reply_id)
        if reply is None:
            raise InvalidRequest("saved_reply_not_found", f"no saved reply {content.saved_reply_id!r}",
                                 "content.saved_reply_id")
        if not applies_to(tuple(reply.get("channel_types") or ()), command.channel_type.value):
            raise InvalidRequest("saved_reply_not_for_channel",
                                 f"the saved reply does not apply to {command.channel_type.value}", "content")
        text = reply["text"]
        fields = await self.contact_fields.fields_of(command.conversation_key) if placeholders(text) else {}
        rendered = OutboundText(text=render_saved_reply(text, fields), media_id=reply.get("media_id"))
        return command.model_copy(update={"content": rendered})

    async def refusal_code(self, command: SendMessage, decision: Decision) -> str:
        if decision.verdict is not Verdict.TEMPLATE_REQUIRED:
            return decision.reason.value
        # edna: say so plainly when the channel needs a template and none is approved
        has_one = await self.templates.has_approved(command.tenant_id, command.channel_id)
        return "template_required" if has_one else "no_approved_template"

    def channel(self, command: SendMessage) -> AnyChannel:
        channel = self.channels.get(command.channel_id)
        if channel is None or channel.tenant_id != command.tenant_id or channel.type != command.channel_type:
            raise InvalidRequest("unknown_channel", f"no {command.channel_type} channel {command.channel_id!r}",
                                 "channel_id")
        return channel

    async def _existing(self, tenant_id: str, message_id: str) -> Accepted:
        doc = await self.messages.get(tenant_id, message_id)
        if doc is None:  # the claim's owner has not stored its message yet: it is being accepted right now
            return Accepted(message_id, State.QUEUED, None, duplicate=True)
        return Accepted(message_id, State(doc["state"]), doc.get("reason"), duplicate=True,
                        decision=doc.get("decision"))

    async def _move(self, doc: dict[str, Any], expected: State, new: State, *, reason: str | None = None,
                    provider_message_id: str | None = None, error: ProviderError | None = None) -> bool:
        now = self.clock.now()
        fields: dict[str, Any] = {}
        if reason is not None:
            fields["reason"] = reason
        if provider_message_id is not None:
            fields["provider_message_id"] = provider_message_id
        if error is not None:
            fields["error"] = error.model_dump()
        if not await self.messages.transition(doc["tenant_id"], doc["_id"], expected, new, now, **fields):
            return False
        await self.updates.state_changed(doc, new, now, reason=reason, provider_message_id=provider_message_id,
                                         error=error)
        return True


def _threaded(command: SendMessage, thread: EmailThread | None) -> tuple[SendMessage, dict[str, str]]:
    """An email reply under the customer's last mail: `Re:` their subject unless one is given, and the threading
    headers the provider call adds."""
    options = command.email or EmailOptions()
    subject = reply_subject(thread, options.subject)
    if subject != options.subject:
        command = command.model_copy(update={"email": options.model_copy(update={"subject": subject})})
    return command, reply_headers(thread)


def _decision_dict(decision: Decision) -> dict[str, Any]:
    values = asdict(decision)
    return {key: (value.value if hasattr(value, "value") else value) for key, value in values.items()}

