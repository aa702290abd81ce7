"""Consumer of parley.inbound.messages.v1: one open conversation per key, routing of new ones, timeline."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime

from parley_common.channels import Channels
from parley_common.events.conversations import ConversationChanged
from parley_common.events.inbound import MessageReceived
from parley_common.ids import ConversationKey, contact_id_of_first_message, new_id
from parley_common.topics import CONVERSATIONS_EVENTS
from parley_router.domain import conversation as conv_rules
from parley_router.domain.bots import ChannelBot, hand_to_bot, route_of
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, TransitionError
from parley_router.domain.revisions import RevisionKind, reaction_fields, revised_fields, revision_of
from parley_router.domain.rules import Facts, first_match
from parley_router.domain.timeline import EntryKind, inbound_entry_id
from parley_router.handlers.engine import Engine

MAX_REFERENCES = 20  # a mail's newest References looked up: a long thread's oldest ids say nothing newer ones don't


def message_text(event: MessageReceived) -> str:
    texts = [getattr(part, "text", None) or getattr(part, "caption", None) or "" for part in event.parts]
    return " ".join(text for text in texts if text)


class InboundHandler:
    def __init__(self, engine: Engine, channels: Channels | None = None) -> None:
        self.engine = engine
        self.stores = engine.stores
        self.channel_bots = _channel_bots(channels) if channels is not None else {}

    async def handle(self, event: MessageReceived) -> None:
        if await self._revised(event) or await self._grouped(event):
            return
        key = event.conversation_key
        at = event.provider_timestamp
        # three independent reads at once, each shared with the batch's other messages (one command for all); the
        # inbound entry is written last, so when it exists this message was fully handled (a replay): the others unused
        handled_in, blocked, conv = await asyncio.gather(
            self.stores.timeline.conversation_of_provider_message(event.tenant_id, event.provider_message_id),
            self.stores.directory.is_blocked(key), self.stores.conversations.open_for(key))
        if handled_in:
            return
        if conv is None and event.email is not None:
            if event.email.automatic:
                return  # an auto-reply or a bounce never opens a conversation (nor answers one: no mail loops)
            conv = await self._thread_of(event)
        if conv is None:
            conv = await self._open(event, key, blocked)
        elif conv.opened_by == event.provider_message_id:
            await self._announce_again(conv, event)
        elif event.direction == "inbound":
            change = "message_appended" if conv.is_open else "reopened"
            try:
                conv = await self.engine.change(conv, lambda c: self._wrote(c, at, blocked), change, "customer",
                                                now=at, entry_id=inbound_entry_id(event.provider_message_id))
            except TransitionError:  # another message of the customer opened a conversation meanwhile: join it
                conv = await self.stores.conversations.open_for(key) or await self._open(event, key, blocked)
        await self.stores.timeline.put(event.tenant_id, conv.id, inbound_entry_id(event.provider_message_id),
                                       EntryKind.INBOUND.value, at, {
                                           "provider_message_id": event.provider_message_id,
                                           "direction": event.direction, "text": message_text(event),
                                           "parts": [part.model_dump(mode="json") for part in event.parts],
                                           "blocked": blocked, "sender": "customer", "group_id": event.group_id},
                                       received_at=event.received_at)
        if conv.contact_id is None or conv.opened_by == event.provider_message_id:
            # contacts may have announced the customer's new card, or a change of it (the name the platform's
            # profile gave a moment later), while this conversation was being stored: its event then found no
            # conversation to show it on (read after the store, one of the two sees the other)
            await self.engine.learn_contact(conv)

    async def _thread_of(self, event: MessageReceived) -> Conversation | None:
        """The sender's closed conversation this mail answers (`In-Reply-To`, then `References` newest first,
        the newest known one decides): a reply to an agent's mail reopens its thread instead of starting another.
        Only the sender's own: a Message-ID is no secret (everyone on the thread has it), and an agent's answer
        goes to the conversation's one address — a reply from another address opens that address's own."""
        assert event.email is not None
        references = (event.email.in_reply_to, *reversed(event.email.references[-MAX_REFERENCES:]))
        for reference in dict.fromkeys(ref for ref in references if ref):
            conversation_id = await self.stores.timeline.conversation_of_provider_message(event.tenant_id, reference)
            if conversation_id is None:
                continue
            conv = await self.stores.conversations.get(event.tenant_id, conversation_id)
            same_sender = conv is not None and (conv.channel_id, conv.external_user_id) == (
                event.channel_id, event.external_user_id)
            return conv if same_sender else None
        return None

    async def _revised(self, event: MessageReceived) -> bool:
        """An edit, deletion or reaction changes the entry it refers to; False when it is a message of its own
        (or its entry is unknown: then it is shown as its own entry)."""
        revision = revision_of(event)
        if revision is None:
            return False
        timeline = self.stores.timeline
        entry = await timeline.entry_of_provider_message(event.tenant_id, revision.target_provider_message_id)
        if entry is None:
            return False
        if revision.kind is RevisionKind.REACTION:
            fields, before = reaction_fields(event), None
        else:
            parts = [part.model_dump(mode="json") for part in event.parts]
            fields, before = revised_fields(revision.kind, entry, message_text(event), parts, event.provider_timestamp)
        await timeline.revise(entry["_id"], str(event.event_id), fields, before)
        # told even on a redelivery (the first attempt may have stopped before it): the screens refetch the entry
        conv = await self.stores.conversations.get(event.tenant_id, entry["conversation_id"])
        if conv is not None:
            await self.engine.publish(conv, "message_revised", "customer", revision.kind.value,
                                      event.provider_timestamp, entry_id=entry["entry_id"])
        return True

    async def _grouped(self, event: MessageReceived) -> bool:
        """A message sent together with earlier ones (a Telegram album) joins their entry in the open conversation;
        False when it is the group's first (or nothing is open)."""
        if event.group_id is None:
            return False
        conv = await self.stores.conversations.open_for(event.conversation_key)
        if conv is None:
            return False
        timeline = self.stores.timeline
        entry = await timeline.entry_of_group(event.tenant_id, conv.id, event.group_id)
        if entry is None or entry.get("provider_message_id") == event.provider_message_id:
            return False
        text = " ".join(t for t in (entry.get("text"), message_text(event)) if t)
        await timeline.add_to_group(entry["_id"], str(event.event_id), event.provider_message_id,
                                    [part.model_dump(mode="json") for part in event.parts], text)
        return True

    @staticmethod
    def _wrote(conv: Conversation, at: datetime, blocked: bool) -> Conversation:
        opened = conv if conv.is_open else conv_rules.reopen(conv, at)
        return replace(conv_rules.customer_wrote(opened, at), blocked=blocked)

    async def _open(self, event: MessageReceived, key: ConversationKey, blocked: bool) -> Conversation:
        """A new conversation (also after a closed one), routed by the tenant's rules, then stored once: already
        offered when an agent has room (`Engine.open_new`); a blocked customer's is stored and routed nowhere."""
        at = event.provider_timestamp
        conv = conv_rules.open_conversation(new_id(), event.tenant_id, event.channel_id, event.channel_type.value,
                                            event.external_user_id, at, blocked=blocked)
        answered, conv = await asyncio.gather(  # two reads at once
            self.stores.broadcasts.answered(key, at),
            self.engine.with_known_contact(_with_customer(replace(conv, opened_by=event.provider_message_id), event)))
        conv = replace(conv, answered_broadcast_id=answered)
        if conv.contact_id is None:  # a new customer: the card contacts creates from this very message
            conv = replace(conv, contact_id=contact_id_of_first_message(event.event_id))
        comment = None
        if not blocked:
            conv, comment = await self._route(conv, event)
        if (existing := await self.stores.conversations.claim_key(conv)) is not None:
            return existing  # another delivery opened it first

        return await self.engine.open_new(conv, lambda opened: self._opened(opened, comment, event))

    def _opened(self, conv: Conversation, comment: str | None, event: MessageReceived) -> ConversationChanged:
        return self.engine.event(conv, "opened", "customer", comment, event.provider_timestamp,
                                 entry_id=inbound_entry_id(event.provider_message_id))

    async def _announce_again(self, conv: Conversation, event: MessageReceived) -> None:
        """The events of a conversation stored by an attempt that stopped before its entry was written: it may
        never have been announced, or offered (repeated events are harmless; an offer of a conversation already
        placed is skipped)."""
        opened = self._opened(conv, None, event)
        if conv.version == 1 and conv.offer_expires_at is not None:  # stored already offered, untouched since
            await self.engine.record(conv, "offered", "system", None, self.engine.clock.now(), first=[opened])
            return
        await self.engine.publisher.publish(opened, CONVERSATIONS_EVENTS)
        if conv_rules.queue_target(conv) is not None:
            await self.engine.offer_soon(conv)

    async def _route(self, conv: Conversation, event: MessageReceived) -> tuple[Conversation, str]:
        routing = await self.engine.cache.routing(conv.tenant_id)
        facts = Facts(channel_type=conv.channel_type, channel_id=conv.channel_id, text=message_text(event),
                      labels=frozenset(conv.labels), language=event.customer.language,
                      custom_fields=conv.contact_fields)
        rule = first_match(routing.rules, facts, event.provider_timestamp, routing.hours)
        route = route_of(rule, self.channel_bots.get(conv.channel_id))
        if route.target.kind is AssigneeKind.BOT:
            return hand_to_bot(conv, route, conv.opened_at), route.comment
        sticky = await self.stores.conversations.last_agent_for(event.conversation_key) if (
            rule and rule.sticky) else None
        return _queued_for(conv, route.target, sticky, conv.opened_at), route.comment


def _channel_bots(channels: Channels) -> dict[str, ChannelBot]:
    """channel id → its default bot, for the channels of the channel file that name one."""
    return {channel.id: ChannelBot(channel.bot_id, channel.bot_timeout_seconds, channel.bot_fallback_team)
            for channel in channels if channel.bot_id}


def _queued_for(conv: Conversation, target: Assignee, sticky: str | None, now: datetime) -> Conversation:
    return replace(conv_rules.enqueue(conv, target, now), sticky_agent=sticky)


def _with_customer(conv: Conversation, event: MessageReceived) -> Conversation:
    customer = event.customer
    return replace(conv, customer_name=customer.profile_name or customer.username or customer.email,
                   customer_phone=customer.phone_e164)
