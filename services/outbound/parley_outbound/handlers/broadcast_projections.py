"""Consumers feeding broadcasts: the audience projection (parley.contacts.events.v1) and replies (a customer's
message on parley.inbound.messages.v1 after a broadcast message reached them)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.client import Pipeline

from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.events.inbound import MessageReceived
from parley_outbound.adapters.audience_repo import AudienceRepository, AudienceWrite
from parley_outbound.adapters.broadcast_replies import BroadcastReplies
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.domain.saved_replies import custom_field_changes
from parley_outbound.handlers.projections import subscription


class AudienceProjection:
    """A consumer batch at a time: the events' writes in one ordered bulk write; a merge (which reads both
    contacts) is applied alone, after the writes before it."""

    def __init__(self, audience: AudienceRepository) -> None:
        self._audience = audience

    async def on_batch(self, events: list[Any]) -> None:
        pending: list[AudienceWrite] = []
        for event in events:
            if isinstance(event, ContactsMerged):
                await self._audience.write(pending)
                pending = []
                await self._audience.merged(event.tenant_id, event.contact_id, event.merged_contact_id,
                                            [i.model_dump() for i in event.identities], event.phones)
            elif (operation := self._operation(event)) is not None:
                pending.append(operation)
        await self._audience.write(pending)

    def _operation(self, event: Any) -> AudienceWrite | None:
        audience = self._audience
        if isinstance(event, ContactCreated):
            return audience.created(event.tenant_id, event.contact_id, event.display_name,
                                    [i.model_dump() for i in event.identities], event.phones)
        if isinstance(event, ContactBlocked | ContactUnblocked):  # maybe an identity added after creation
            return audience.identity_blocked(event.tenant_id, event.contact_id, event.identity.model_dump(),
                                             isinstance(event, ContactBlocked))
        if isinstance(event, ContactLabelled):
            return audience.labelled(event.tenant_id, event.contact_id, event.labels)
        if isinstance(event, ContactUpdated):
            name = event.changed.get("display_name")
            fields = custom_field_changes(event.changed)
            phones = event.changed.get("phones")
            phones = [str(phone) for phone in phones] if isinstance(phones, list) else None
            if fields or isinstance(name, str) or phones is not None:
                return audience.updated(event.tenant_id, event.contact_id, name if isinstance(name, str) else None,
                                        fields, phones)
        return None


class ReplyProjection:
    def __init__(self, replies: BroadcastReplies, messages: MessageRepository) -> None:
        self._replies = replies
        self._messages = messages

    def ask(self, pipeline: Pipeline, event: MessageReceived) -> bool:
        """Add the question "does this answer a broadcast message?" to the batch's pipeline; False when the event
        answers nothing (an echo or an unsubscribe notice), so nothing was asked."""
        if event.direction != "inbound" or subscription(event) is False:
            return False
        self._replies.ask_answered(pipeline, event.conversation_key)
        return True

    async def on_answers(self, answers: list[tuple[MessageReceived, str | None]]) -> None:
        """Each asked event with the broadcast message it answers (None: none)."""
        for event, message_id in answers:
            if message_id:
                await self._messages.mark_replied(event.tenant_id, str(message_id), event.provider_timestamp)
