"""POST /v1/messages (202 + message id, status queued) and GET /v1/messages/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from parley_common.admission import OVERLOADED, Admission
from parley_common.auth import Principal, Role, require_roles
from parley_common.batching import LingerGate
from parley_common.bounds import Identifier, PathId
from parley_common.errors import AUTHENTICATED_ERRORS, ApiError, documented_errors
from parley_common.events.common import SenderKind
from parley_common.events.outbound import (
    AfterSend,
    EmailOptions,
    OutboundContent,
    SavedReplyContent,
    Sender,
    SendMessage,
)
from parley_common.ids import ConversationKey, new_id
from parley_common.visibility_store import VisibilityProjection
from parley_outbound.domain.compose import message_kind
from parley_outbound.domain.status import State
from parley_outbound.domain.validation import InvalidRequest, check_single_attachment
from parley_outbound.domain.window import SendIntent
from parley_outbound.handlers.phone_recipient import PhoneRecipients
from parley_outbound.handlers.sending import Sender as Pipeline

SENDERS = (Role.AGENT, Role.MANAGER, Role.OWNER, Role.INTEGRATION)
WINDOW_FACTS_REBUILDING = (f"{AUTHENTICATED_ERRORS[503]}; window_facts_rebuilding: the cache lost the messaging "
                           "windows (restarted empty) and they are being rebuilt from the topics, usually within "
                           "seconds — nothing was stored, try again after `Retry-After` seconds (never a refusal "
                           "for a window the cache forgot)")


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Bounded as the events that carry it are: a longer value could never be published (it was a 500).
    external_user_id: str | None = Field(default=None, min_length=1, max_length=512,
                                         description="the customer's identity on the channel")
    phone: str | None = Field(default=None, max_length=32, description=(
        "a phone number to write first (≥ 7 digits): the address on WhatsApp; on Telegram and Viber (which let a "
        "bot write only to a user who started it) the contact with this phone and an identity on the channel"))

    @model_validator(mode="after")
    def _exactly_one(self) -> Recipient:
        if (self.external_user_id is None) == (self.phone is None):
            raise ValueError("give exactly one of external_user_id or phone")
        return self


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: str = Field(min_length=1, max_length=128)
    recipient: Recipient
    content: OutboundContent
    email: EmailOptions | None = None
    after_send: AfterSend | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    attachments: list[Identifier] | None = Field(default=None, max_length=10,
                                                 description="media ids; at most one per message")


class SendAccepted(BaseModel):
    message_id: str
    status: str
    duplicate: bool = False
    pricing_category: str | None = None
    free: bool | None = None


def hidden_customer() -> ApiError:
    """Another team's customer: the same answer as a conversation the caller cannot see (no existence leak)."""
    return ApiError(404, "conversation_not_found", "no conversation with this customer that you may see")


def messages_router(pipeline: Pipeline, visibility: VisibilityProjection, phones: PhoneRecipients,
                    admission: Admission, gate: LingerGate) -> APIRouter:
    router = APIRouter(prefix="/v1/messages", tags=["messages"])

    @router.post("", status_code=202, response_model=SendAccepted, summary="Send a message (asynchronously)",
                 responses=documented_errors({
                     404: "unknown_channel, conversation_not_found (another team's customer)",
                     422: "validation_failed, invalid_phone_number, customer_not_on_channel (writing first by phone "
                          "on Telegram / Viber: no contact with that phone on the channel), or a refusal's reason "
                          "(details: message_id, field)",
                     503: f"{WINDOW_FACTS_REBUILDING}; {OVERLOADED}"}))
    async def send(body: SendRequest, request: Request,
                   principal: Principal = Depends(require_roles(*SENDERS)),
                   idempotency_header: str | None = Header(default=None, alias="Idempotency-Key")) -> SendAccepted:
        with admission.slot():
            command = await _command(body, principal, request.state.correlation_id, idempotency_header, pipeline,
                                     phones)
            await visibility.require(principal, [command.conversation_key], hidden_customer())
            async with gate.passage():  # sends close together share each round trip of their acceptance
                accepted = await pipeline.accept(command, forward=True)  # answers once Kafka has the command
        if accepted.state is State.REFUSED:
            details = {"message_id": accepted.message_id, **({"field": accepted.field} if accepted.field else {})}
            raise ApiError(422, accepted.reason or "refused", accepted.message or _refusal_message(accepted.reason),
                           details)
        decision = accepted.decision or {}
        return SendAccepted(message_id=accepted.message_id, status=accepted.state.value,
                            duplicate=accepted.duplicate, pricing_category=decision.get("pricing_category"),
                            free=decision.get("free"))

    @router.get("/{message_id}", summary="One outbound message and its status")
    async def get(message_id: PathId, principal: Principal = Depends(require_roles(*SENDERS))) -> dict[str, Any]:
        view = await pipeline.view(principal.tenant_id, message_id)
        not_found = ApiError(404, "not_found", "no such message")
        if view is None:
            raise not_found
        if (view.get("sender") or {}).get("login") != principal.login:  # one's own message is always one's own
            key = ConversationKey(principal.tenant_id, view["channel_id"], view["external_user_id"])
            await visibility.require(principal, [key], not_found)
        return view

    return router


async def _command(body: SendRequest, principal: Principal, correlation_id: str, header_key: str | None,
                   pipeline: Pipeline, phones: PhoneRecipients) -> SendMessage:
    channel = pipeline.channels.for_caller(principal.tenant_id, body.channel_id)
    if isinstance(body.content, SavedReplyContent) and body.attachments:
        raise ApiError(422, "attachments_with_saved_reply", "a saved reply brings its own attachment",
                       {"field": "attachments"})
    is_bot = principal.has_any((Role.INTEGRATION,)) and not principal.has_any((Role.AGENT, Role.MANAGER, Role.OWNER))
    sender = (Sender(kind=SenderKind.BOT, bot_id=principal.login) if is_bot
              else Sender(kind=SenderKind.HUMAN, login=principal.login))
    try:
        media = check_single_attachment([getattr(body.content, "media_id", None), *(body.attachments or [])])
        customer = body.recipient.external_user_id or await phones.address(
            principal.tenant_id, channel, body.recipient.phone or "",
            SendIntent(channel.type, sender.kind, message_kind(body.content)))
    except InvalidRequest as invalid:
        raise ApiError(422, invalid.code, invalid.message, {"field": invalid.field}) from None
    content = body.content
    if media and getattr(content, "media_id", None) != media:
        content = content.model_copy(update={"media_id": media})
    return SendMessage(
        occurred_at=pipeline.clock.now(), tenant_id=principal.tenant_id, correlation_id=correlation_id,
        channel_id=body.channel_id, external_user_id=customer, message_id=new_id(),
        idempotency_key=body.idempotency_key or header_key, channel_type=channel.type, sender=sender,
        content=content, email=body.email, after_send=body.after_send,
    )


def _refusal_message(reason: str | None) -> str:
    if reason == "template_required":
        return "outside the messaging window (or writing first) this channel accepts only an approved template"
    if reason == "customer_blocked_bot":
        return "the customer blocked the bot: nothing can be sent until they start it again"
    if reason == "marketing_opted_out":
        return "the customer stopped marketing messages: only utility and authentication templates may go"
    return f"the channel's rules refuse this message: {reason}"
