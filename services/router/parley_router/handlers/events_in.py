"""Consumers of outbound messages, media, contacts and conversation commands."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from uuid import NAMESPACE_URL, uuid5

from parley_common.events.common import ChannelType
from parley_common.events.conversations import ConversationActionRequested
from parley_common.events.media import MediaExpired, MediaFailed, MediaPending, MediaStored
from parley_common.events.outbound import OutboundMessageUpdated, OutboundStatus, SenderKind
from parley_common.ids import new_id
from parley_common.records import PermanentFailure
from parley_common.retries import Transient
from parley_router.adapters.conversations import StaleVersion
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, TransitionError
from parley_router.domain.timeline import EntryKind, inbound_entry_id, outbound_entry_id
from parley_router.handlers.engine import Engine, Transition

STATUS_RANK = {OutboundStatus.QUEUED: 0, OutboundStatus.SENT: 1, OutboundStatus.DELIVERED: 2,
               OutboundStatus.READ: 3, OutboundStatus.FAILED: 4, OutboundStatus.REFUSED: 4}
NOT_SENT = (OutboundStatus.FAILED, OutboundStatus.REFUSED)
SENT_RANK = STATUS_RANK[OutboundStatus.SENT]
REPLY_SAVE_ATTEMPTS = 5


def shown_text(event: OutboundMessageUpdated) -> str | None:
    """What the customer received: a template as rendered (header, body, footer), else the text or caption."""
    content = event.content
    return event.rendered_text or getattr(content, "text", None) or getattr(content, "caption", None)


class OutboundHandler:
    """Outbound messages on the timeline (status, sender login). Only a message that left (sent, delivered or
    read) touches a conversation: the first time it does, an agent's reply answers it and, when nobody has it
    yet, assigns it to that agent; a business-first message that left opens one — except a broadcast's: it is
    only remembered (the customer's answer opens the conversation, which shows the broadcast), and in a
    conversation already open it shows on the timeline without answering the customer. Each status is published once:
    the new entry as `message_appended`, a status that moved it on as `message_status` (or `assigned` when the
    reply took the conversation)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores = engine.stores

    async def handle(self, event: OutboundMessageUpdated) -> None:
        left = STATUS_RANK[event.status] >= SENT_RANK and event.status not in NOT_SENT
        conv = await self.stores.conversations.open_for(event.conversation_key)
        if conv is None and event.broadcast_id is not None:
            if event.status is OutboundStatus.SENT:  # the customer's answer opens the conversation, and shows it
                await self.stores.broadcasts.record(event.conversation_key, event.broadcast_id, event.message_id,
                                                    event.status_at)
            return
        if conv is None and not left:
            return  # refused, failed or not sent yet, with nothing open: outbound's own record tells the sender
        entry_id = outbound_entry_id(event.message_id)
        opened_before = conv is not None and conv.opened_by == entry_id
        conv = conv or await self._first_contact(event, entry_id)
        timeline, rank = self.stores.timeline, STATUS_RANK[event.status]
        body = {"message_id": event.message_id, "provider_message_id": event.provider_message_id,
                "sender": event.sender.model_dump(mode="json"), "content": event.content.model_dump(mode="json"),
                "text": shown_text(event), "email": event.email.model_dump(mode="json") if event.email else None,
                "error": event.error.model_dump() if event.error else None, "reason": event.reason}
        moved: tuple[int, datetime] | None
        if event.status is OutboundStatus.QUEUED:  # the first status: a new entry, inserted with the batch's others
            is_new = await timeline.put(event.tenant_id, conv.id, entry_id, EntryKind.OUTBOUND.value,
                                        event.status_at, {**body, "statuses.queued": event.status_at},
                                        created_with={"status": event.status.value, "status_rank": rank})
            moved = (-1, event.status_at) if is_new else await timeline.advance_status(
                conv.id, entry_id, event.status.value, rank)
        else:  # a later one: the entry refreshed and moved on (only forward) in one write
            is_new, moved = await timeline.put_status(event.tenant_id, conv.id, entry_id, event.status_at, body,
                                                      event.status.value, rank, str(event.event_id))
        if opened_before and moved is not None and moved[0] < SENT_RANK:
            # the status that opened it, delivered again (the router stopped after storing the conversation): its
            # `opened` may not have gone out, and goes again under its one event id
            await self.engine.publish(conv, "opened", event.sender.login or "system", None, conv.opened_at)
        if moved is not None and moved[0] < SENT_RANK and left and conv.is_open and event.broadcast_id is None:
            # answered when the agent wrote it (its first status), once it is known to have left
            await self._reply_left(conv, event, entry_id, moved[1], "message_appended" if is_new else "message_status")
        elif is_new or moved is not None:  # the ticks on agents' screens
            await self._announce(conv, "message_appended" if is_new else "message_status", entry_id,
                                 event.status_at)

    async def _announce(self, conv: Conversation, change: str, entry_id: str, at: datetime) -> None:
        # read again: the event carries the conversation's state, and subscribers keep projections from it
        current = await self.stores.conversations.get(conv.tenant_id, conv.id) or conv
        await self.engine.publish(current, change, "system", None, at, entry_id=entry_id)

    async def _reply_left(self, conv: Conversation, event: OutboundMessageUpdated, entry_id: str, at: datetime,
                          change: str) -> None:
        """The reply answers the conversation. A concurrent save of it (an agent's action, a contact's update)
        makes it read the conversation again and answer that, rather than hold the lane for a retry of the record."""
        for attempt in range(REPLY_SAVE_ATTEMPTS):
            try:
                await self._answer(conv, event, entry_id, at, change)
                return
            except StaleVersion:
                current = await self.stores.conversations.get(conv.tenant_id, conv.id)
                if current is None or not current.is_open or attempt == REPLY_SAVE_ATTEMPTS - 1:
                    raise
                conv = current

    async def _answer(self, conv: Conversation, event: OutboundMessageUpdated, entry_id: str, at: datetime,
                      change: str) -> None:
        login = event.sender.login if event.sender.kind is SenderKind.HUMAN else None
        transition: Transition = (lambda c: conv_rules.agent_replied(c, login, at, entry_id)) if login else (
            lambda c: conv_rules.bot_replied(c, at, entry_id))
        actor = login or "bot"
        after = transition(conv)
        if after == conv:
            await self._announce(conv, change, entry_id, at)
            return
        took_it = after.agent != conv.agent  # KAON: replying to an unassigned thread takes it
        try:
            await self.engine.change(conv, transition, "assigned" if took_it else change, actor, entry_id=entry_id)
        except TransitionError as exc:  # e.g. the agent has no capacity left: the reply stays, unassigned
            answered = replace(conv_rules.mark(conv, False, self.engine.clock.now()), answered_by_reply=entry_id)
            await self.engine.change(conv, lambda _: answered, change, actor, comment=exc.code, entry_id=entry_id)

    async def _first_contact(self, event: OutboundMessageUpdated, entry_id: str) -> Conversation:
        """The business wrote first (template, campaign) and the message left: a conversation starts, answered,
        not waiting: a bot's is the bot's, an agent's waits for that agent (their reply then assigns it). An
        e-mail starts closed (the seeds: an e-mail opens no thread; it is in the customer's history): one record per
        message, whichever of its statuses comes first and however often (the same id, inserted once, and the
        same event)."""
        now = event.status_at
        email = event.channel_type is ChannelType.EMAIL
        conv_id = email_record_id(event.tenant_id, event.message_id) if email else new_id()
        conv = conv_rules.open_conversation(conv_id, event.tenant_id, event.channel_id, event.channel_type.value,
                                            event.external_user_id, now)
        conv = await self.engine.with_known_contact(replace(conv_rules.mark(conv, False, now), opened_by=entry_id))
        actor = event.sender.login or "system"
        if email:
            conv = await self.stores.conversations.insert(conv_rules.close(conv, now))
            await self.engine.publish(conv, "closed", actor, "sent as e-mail", now,
                                      event_id=uuid5(NAMESPACE_URL, f"parley:conversation:{conv.id}:sent-as-email"))
            return conv
        if event.sender.kind is SenderKind.HUMAN and event.sender.login:
            conv = conv_rules.enqueue(conv, Assignee(AssigneeKind.AGENT, event.sender.login), now)
        else:
            conv = conv_rules.assign(conv, Assignee(AssigneeKind.BOT, event.sender.bot_id or "system"), now)
        conv = await self.stores.conversations.create(conv)
        await self.engine.publish(conv, "opened", actor, None, now)
        return conv


def email_record_id(tenant_id: str, message_id: str) -> str:
    """The closed conversation that records a business-first e-mail, the same for every status of the message."""
    return uuid5(NAMESPACE_URL, f"parley:email-record:{tenant_id}:{message_id}").hex


class MediaHandler:
    """Attachments' states (pending again on a retry, stored, failed with the reason, expired) linked to their
    message by provider message id; the message's screens hear of it (`media_changed` naming its entry)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores = engine.stores

    async def __call__(self, event: MediaStored | MediaFailed | MediaPending | MediaExpired) -> None:
        if not event.provider_message_id:
            return
        media = {"media_id": event.media_id, "state": event.type.rsplit(".", 1)[-1],
                 "attachment_id": event.attachment_id, "at": event.occurred_at,
                 **{name: getattr(event, name, None) for name in MEDIA_FIELDS}}
        await self.stores.timeline.link_media(event.tenant_id, event.provider_message_id,
                                              event.attachment_id or event.media_id, media)
        conversation_id = await self.stores.timeline.conversation_of_provider_message(event.tenant_id,
                                                                                      event.provider_message_id)
        conv = await self.stores.conversations.get(event.tenant_id, conversation_id) if conversation_id else None
        if conv is not None:  # else the message is not on the timeline yet: it shows the media when it is
            await self.engine.publish(conv, "media_changed", "media", None, event.occurred_at,
                                      entry_id=inbound_entry_id(event.provider_message_id))


MEDIA_FIELDS = ("mime_type", "size_bytes", "file_name", "media_kind", "reason", "attempts")


COMMAND_PATIENCE_SECONDS = 120


class ConversationNotYetOpen(Transient):
    """The conversation this command is about has not been opened yet (tried again until COMMAND_PATIENCE_SECONDS)."""


class CommandsHandler:
    """Outbound's after-send actions: close, assign to me, transfer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores = engine.stores

    async def handle(self, event: ConversationActionRequested) -> None:
        command_id = str(event.event_id)
        if await self.stores.processed.seen("commands", command_id):
            return
        conv = await self.stores.conversations.open_for(event.conversation_key)
        # applied by an earlier attempt that stopped before noting it processed (its save carries the command):
        # a close leaves nothing open, an assignment is there already; neither is to be waited for or refused
        applied = conv.applied_command_id == command_id if conv is not None else (
            await self.stores.conversations.applied(event.conversation_key, command_id))
        if conv is None and not applied:
            await self._wait_for_conversation(event)
            return
        if conv is not None and not applied:
            try:
                await self._act(conv, event, command_id)
            except TransitionError as exc:
                raise PermanentFailure(exc.code, exc.message) from exc
        await self.stores.processed.mark("commands", command_id, self.engine.clock.now())

    async def _wait_for_conversation(self, event: ConversationActionRequested) -> None:
        """The after-send action can overtake the outbound message that opens the thread (another topic):
        retry for a while (not committed → delivered again), then dead-letter it."""
        age = (self.engine.clock.now() - event.occurred_at).total_seconds()
        if age > COMMAND_PATIENCE_SECONDS:
            raise PermanentFailure("no_open_conversation", f"{event.action}: no open conversation for the key")
        await asyncio.sleep(1.0)
        raise ConversationNotYetOpen(event.action)

    async def _act(self, conv: Conversation, event: ConversationActionRequested, command_id: str) -> None:
        now = event.occurred_at
        if event.action == "close":
            await self.engine.change(
                conv, lambda c: replace(conv_rules.close(c, now, event.comment), applied_command_id=command_id),
                "closed", event.actor, event.comment)
            return
        if event.action == "assign_to_me":
            target = Assignee(AssigneeKind.AGENT, event.actor)
            change = "assigned"
        elif event.target is None:
            raise TransitionError("transfer_needs_target", "transfer needs a target", status=422)
        else:
            target = Assignee(AssigneeKind(event.target.kind if event.target.kind != "queue" else "team"),
                              event.target.id)
            change = "transferred"
        await self.engine.change(
            conv, lambda c: replace(conv_rules.assign(c, target, now), applied_command_id=command_id), change,
            event.actor, event.comment)
