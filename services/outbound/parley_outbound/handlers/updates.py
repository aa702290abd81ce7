"""Building and publishing what outbound tells the world: OutboundMessageUpdated on every state change,
and the after-send action for the router."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from parley_common.events.conversations import Assignee, ConversationActionRequested
from parley_common.events.inbound import ProviderError
from parley_common.events.outbound import OutboundMessageUpdated, OutboundStatus, SendMessage
from parley_common.kafka import EventPublisher
from parley_common.mongo import read_stored
from parley_common.topics import CONVERSATIONS_COMMANDS, OUTBOUND_MESSAGES, OUTBOUND_REQUESTS
from parley_outbound import metrics
from parley_outbound.domain.status import State


def message_doc(command: SendMessage, state: State, now: datetime, decision: dict[str, Any],
                reason: str | None = None, rendered_text: str | None = None) -> dict[str, Any]:
    return {
        "_id": command.message_id, "tenant_id": command.tenant_id, "channel_id": command.channel_id,
        "external_user_id": command.external_user_id, "channel_type": command.channel_type.value,
        "state": state.value, "reason": reason, "decision": decision, "provider_message_id": None,
        "rendered_text": rendered_text, "command": command.model_dump(mode="json"),
        "created_at": now, "updated_at": now,
        "history": dict.fromkeys((State.QUEUED.value, state.value) if state is State.SENDING else (state.value,), now),
        **({"broadcast_id": command.broadcast_id} if command.broadcast_id else {}),
    }


def status_event_id(message_id: str, state: State) -> UUID:
    """A message reaches each state once: its event carries the same id whenever it is published (a send's
    outcome announced again after a failure that followed its write), so subscribers de-duplicate it."""
    return uuid5(NAMESPACE_URL, f"parley:outbound:{message_id}:{state.value}")


class UpdatePublisher:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def state_changed(self, doc: dict[str, Any], state: State, at: datetime, *, reason: str | None = None,
                            provider_message_id: str | None = None, error: ProviderError | None = None,
                            command: SendMessage | None = None) -> None:
        """`command`: the stored command when the caller has it parsed already (saves a validation per event)."""
        if state is State.SENDING:
            return  # internal only
        command = command or read_stored(SendMessage, doc["command"])
        final_reason = reason if reason is not None else doc.get("reason")
        metrics.MESSAGES.labels(command.channel_type.value, state.value, final_reason or "").inc()
        decision = doc.get("decision") or {}
        event = OutboundMessageUpdated(
            event_id=status_event_id(command.message_id, state),  # the same when announced again
            occurred_at=at, tenant_id=command.tenant_id, correlation_id=command.correlation_id,
            channel_id=command.channel_id, external_user_id=command.external_user_id,
            message_id=command.message_id, channel_type=command.channel_type, status=OutboundStatus(state.value),
            sender=command.sender, content=command.content,
            provider_message_id=provider_message_id or doc.get("provider_message_id"),
            status_at=at, error=error, reason=final_reason,
            pricing_category=decision.get("pricing_category"), free=decision.get("free"),
            rendered_text=doc.get("rendered_text"), email=command.email, broadcast_id=command.broadcast_id,
        )
        await self._publisher.publish(event, OUTBOUND_MESSAGES)

    async def command(self, command: SendMessage) -> None:
        """Hand an accepted command to the send consumer (and to every replica's batch)."""
        await self._publisher.publish(command, OUTBOUND_REQUESTS)

    async def after_send(self, command: SendMessage, at: datetime) -> None:
        option = command.after_send
        if option is None:
            return
        target = (Assignee(kind=option.target_kind, id=option.target_id)
                  if option.action == "transfer" and option.target_kind and option.target_id else None)
        actor = command.sender.login or command.sender.bot_id or "system"
        await self._publisher.publish(ConversationActionRequested(
            event_id=uuid5(NAMESPACE_URL, f"parley:outbound:{command.message_id}:after-send"),  # (announced again)
            occurred_at=at, tenant_id=command.tenant_id, correlation_id=command.correlation_id,
            channel_id=command.channel_id, external_user_id=command.external_user_id, action=option.action,
            actor=actor, target=target, comment=option.comment, related_message_id=command.message_id,
        ), CONVERSATIONS_COMMANDS)
