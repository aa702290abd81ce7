"""Consumers of outbound messages, media, contacts and conversation commands."""

from __future__ import annotations

import asyncio
from datetime import datetime

from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.events.conversations import ConversationActionRequested
from parley_common.events.media import MediaExpired, MediaFailed, MediaStored
from parley_common.events.outbound import OutboundMessageUpdated, OutboundStatus, SenderKind
from parley_common.ids import ConversationKey, new_id
from parley_common.kafka import PermanentFailure
from parley_router.domain import contact_fields
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, TransitionError
from parley_router.domain.timeline import EntryKind, outbound_entry_id
from parley_router.handlers.engine import Engine, Transition

STATUS_RANK = {OutboundStatus.QUEUED: 0, OutboundStatus.SENT: 1, OutboundStatus.DELIVERED: 2,
               OutboundStatus.READ: 3, OutboundStatus.FAILED: 4, OutboundStatus.REFUSED: 4}
NOT_SENT = (OutboundStatus.FAILED, OutboundStatus.REFUSED)


def shown_text(event: OutboundMessageUpdated) -> str | None:
    """What the customer received: a template as rendered (header, body, footer), else the text or caption."""
    content = event.content
    return event.rendered_text or getattr(content, "text", None) or getattr(content, "caption", None)


class OutboundHandler:
    """Outbound messages on the timeline (status, sender login); an agent's reply answers the conversation
    and, when nobody has it yet, assigns it to that agent."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores = engine.stores

    async def handle(self, event: OutboundMessageUpdated) -> None:
        conv = await self.stores.conversations.open_for(event.conversation_key)
        if conv is None:
            conv = await self._first_contact(event)
        entry_id = outbound_entry_id(event.message_id)
        is_new = await self.stores.timeline.put(event.tenant_id, conv.id, entry_id, EntryKind.OUTBOUND.value,
                                                event.status_at, {
                                                    "message_id": event.message_id,
                                                    "provider_message_id": event.provider_message_id,
                                                    "sender": event.sender.model_dump(mode="json"),
                                                    "content": event.content.model_dump(mode="json"),
                                                    "text": shown_text(event),
                                                    "email": event.email.model_dump(mode="json") if event.email
                                                    else None,
                                                    f"statuses.{event.status.value}": event.status_at,
                                                    "error": event.error.model_dump() if event.error else None,
                                                    "reason": event.reason})
        advanced = await self.stores.timeline.advance_status(conv.id, entry_id, event.status.value,
                                                             STATUS_RANK[event.status])
        if advanced and not is_new:  # the ticks on agents' screens (the message itself was announced when new)
            await self._announce_status(conv, entry_id, event.status_at)
        if event.status in NOT_SENT or not conv.is_open:
            return
        if event.sender.kind is SenderKind.HUMAN and event.sender.login:
            login = event.sender.login
            await self._apply(conv, lambda c: conv_rules.agent_replied(c, login, event.status_at), login, entry_id)
        elif is_new:
            await self._apply(conv, lambda c: conv_rules.bot_replied(c, event.status_at), "bot", entry_id)

    async def _announce_status(self, conv: Conversation, entry_id: str, at: datetime) -> None:
        # read again: the event carries the conversation's state, and subscribers keep projections from it
        current = await self.stores.conversations.get(conv.tenant_id, conv.id) or conv
        await self.engine.publish(current, "message_status", "system", None, at, entry_id=entry_id)

    async def _apply(self, conv: Conversation, transition: Transition, actor: str, entry_id: str) -> None:
        took_it = transition(conv).agent != conv.agent  # KAON: replying to an unassigned thread takes it
        try:
            await self.engine.change(conv, transition, "assigned" if took_it else "message_appended", actor,
                                     entry_id=entry_id)
        except TransitionError as exc:  # e.g. the agent has no capacity left: the reply stays, unassigned
            answered = conv_rules.mark(conv, False, self.engine.clock.now())
            await self.engine.change(conv, lambda _: answered, "message_appended", actor, comment=exc.code,
                                     entry_id=entry_id)

    async def _first_contact(self, event: OutboundMessageUpdated) -> Conversation:
        """The business wrote first (template, campaign): a conversation starts, answered, not waiting."""
        now = event.status_at
        conv = conv_rules.open_conversation(new_id(), event.tenant_id, event.channel_id, event.channel_type.value,
                                            event.external_user_id, now)
        conv = conv_rules.mark(conv, False, now)
        bot = Assignee(AssigneeKind.BOT, event.sender.bot_id or "system")
        if event.sender.kind is not SenderKind.HUMAN:
            conv = conv_rules.assign(conv, bot, now)
        conv = await self.stores.conversations.create(conv)
        await self.engine.publish(conv, "opened", event.sender.login or "system", None, now)
        return conv


class MediaHandler:
    async def __call__(self, event: MediaStored | MediaFailed | MediaExpired) -> None:
        if not event.provider_message_id:
            return
        media = {"media_id": event.media_id, "state": event.type.rsplit(".", 1)[-1],
                 "mime_type": getattr(event, "mime_type", None), "size_bytes": getattr(event, "size_bytes", None),
                 "file_name": getattr(event, "file_name", None)}
        await self.stores.timeline.link_media(event.tenant_id, event.provider_message_id,
                                              event.attachment_id or event.media_id, media)

    def __init__(self, engine: Engine) -> None:
        self.stores = engine.stores


class ContactsHandler:
    """Projection of contacts: blocked identities, labels, names and custom fields (for routing and search)."""

    def __init__(self, engine: Engine) -> None:
        self.directory = engine.stores.directory

    async def __call__(self, event: object) -> None:
        if isinstance(event, ContactBlocked | ContactUnblocked):
            key = ConversationKey(event.tenant_id, event.identity.channel_id, event.identity.external_user_id)
            await self.directory.set_blocked(key, isinstance(event, ContactBlocked))
        elif isinstance(event, ContactCreated | ContactsMerged):
            identities = [f"{i.channel_id}|{i.external_user_id}" for i in event.identities]
            await self.directory.add_identities(event.tenant_id, event.contact_id, identities)
            if isinstance(event, ContactCreated) and event.display_name:
                await self.directory.put_contact(event.tenant_id, event.contact_id, {"name": event.display_name})
            if isinstance(event, ContactsMerged):
                await self.directory.fold_merged(event.tenant_id, event.contact_id, event.merged_contact_id,
                                                 identities)
        elif isinstance(event, ContactLabelled):
            await self.directory.put_contact(event.tenant_id, event.contact_id, {"labels": list(event.labels)})
        elif isinstance(event, ContactUpdated):
            await self._updated(event)

    async def _updated(self, event: ContactUpdated) -> None:
        wanted = {k: v for k, v in event.changed.items() if k in ("display_name", "phone_e164", "email")}
        if wanted:
            await self.directory.put_contact(event.tenant_id, event.contact_id, wanted)
        to_set, to_drop = contact_fields.field_changes(event.changed)
        if to_set or to_drop:
            await self.directory.set_custom_fields(event.tenant_id, event.contact_id, to_set, to_drop)


COMMAND_PATIENCE_SECONDS = 120


class ConversationNotYetOpen(Exception):
    """Transient: the conversation this command is about has not been opened yet."""


class CommandsHandler:
    """Outbound's after-send actions: close, assign to me, transfer."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stores = engine.stores

    async def handle(self, event: ConversationActionRequested) -> None:
        if await self.stores.processed.seen("commands", str(event.event_id)):
            return
        conv = await self.stores.conversations.open_for(event.conversation_key)
        if conv is None:
            await self._wait_for_conversation(event)
            return
        now = event.occurred_at
        try:
            await self._act(conv, event, now)
        except TransitionError as exc:
            raise PermanentFailure(exc.code, exc.message) from exc
        await self.stores.processed.mark("commands", str(event.event_id), self.engine.clock.now())

    async def _wait_for_conversation(self, event: ConversationActionRequested) -> None:
        """The after-send action can overtake the outbound message that opens the thread (another topic):
        retry for a while (not committed → delivered again), then dead-letter it."""
        age = (self.engine.clock.now() - event.occurred_at).total_seconds()
        if age > COMMAND_PATIENCE_SECONDS:
            raise PermanentFailure("no_open_conversation", f"{event.action}: no open conversation for the key")
        await asyncio.sleep(1.0)
        raise ConversationNotYetOpen(event.action)

    async def _act(self, conv: Conversation, event: ConversationActionRequested, now: datetime) -> None:
        if event.action == "close":
            await self.engine.change(conv, lambda c: conv_rules.close(c, now, event.comment), "closed",
                                     event.actor, event.comment)
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
        await self.engine.change(conv, lambda c: conv_rules.assign(c, target, now), change, event.actor,
                                 event.comment)
