"""Send commands (HTTP API and other systems, e.g. bots) and the outbound message lifecycle."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.common import ChannelType, SenderKind
from parley_common.events.envelope import ConversationScoped, Frozen
from parley_common.events.inbound import ProviderError


class Sender(Frozen):
    kind: SenderKind
    login: str | None = Field(default=None, description="the user who sent a free-form message (humans)")
    bot_id: str | None = None


class OutboundText(Frozen):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=65536)
    media_id: str | None = Field(default=None, description="at most one attachment, stored by media")


class OutboundMedia(Frozen):
    kind: Literal["media"] = "media"
    media_id: str
    caption: str | None = None


class TemplateHeaderMedia(Frozen):
    """A template's media header given as a public link (a stored attachment goes in `media_id` instead)."""

    format: Literal["image", "video", "document"]
    link: str = Field(min_length=1, max_length=2048)
    filename: str | None = Field(default=None, max_length=240, description="shown for a document header")


class TemplateButtonParameter(Frozen):
    """The send-time value of one of the template's buttons, by its 0-based position in the template."""

    index: int = Field(ge=0, le=9)
    sub_type: Literal["quick_reply", "url", "copy_code"]
    value: str = Field(min_length=1, max_length=2000,
                       description="quick_reply: the payload; url: the dynamic URL suffix; copy_code: the coupon code")


class TemplateContent(Frozen):
    kind: Literal["template"] = "template"
    name: str
    language: str
    variables: dict[str, str] = Field(default_factory=dict, description="the body's variables")
    media_id: str | None = Field(default=None, description="the media header, stored by media")
    header_variables: dict[str, str] = Field(default_factory=dict,
                                             description="the text header's variables (WhatsApp: its own {{1}})")
    header_media: TemplateHeaderMedia | None = Field(default=None, description="the media header by public link")
    buttons: tuple[TemplateButtonParameter, ...] = Field(default=(), max_length=10)


class SavedReplyContent(Frozen):
    kind: Literal["saved_reply"] = "saved_reply"
    saved_reply_id: str


OutboundContent = Annotated[
    OutboundText | OutboundMedia | TemplateContent | SavedReplyContent, Field(discriminator="kind")
]


class AfterSend(Frozen):
    """What to do with the conversation once the message is sent (edna's options)."""

    action: Literal["close", "assign_to_me", "transfer"]
    target_kind: Literal["agent", "team", "skill", "bot"] | None = None
    target_id: str | None = None
    comment: str | None = None


class EmailOptions(Frozen):
    subject: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()


class SendMessage(ConversationScoped):
    """Command: send this to the customer. `external_user_id` is the channel identity (or phone to write first)."""

    source = "parley/outbound"
    type: Literal["parley.message.send"] = "parley.message.send"
    schema_version: Literal[1] = 1
    message_id: str = Field(description="Parley's id of the outbound message")
    idempotency_key: str | None = None
    channel_type: ChannelType
    sender: Sender
    content: OutboundContent
    email: EmailOptions | None = None
    after_send: AfterSend | None = None
    broadcast_id: str | None = Field(default=None, max_length=128,
                                     description="the broadcast this message is one recipient's part of")


class OutboundStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    REFUSED = "refused"


class OutboundMessageUpdated(ConversationScoped):
    """The state of one outbound message changed (queued → sent → delivered → read, or failed/refused)."""

    source = "parley/outbound"
    type: Literal["parley.outbound.message_updated"] = "parley.outbound.message_updated"
    schema_version: Literal[1] = 1
    message_id: str
    channel_type: ChannelType
    status: OutboundStatus
    sender: Sender
    content: OutboundContent
    provider_message_id: str | None = None
    status_at: AwareDatetime
    error: ProviderError | None = None
    reason: str | None = Field(default=None, description="machine-readable reason for refused / failed")
    pricing_category: Literal["service", "utility", "marketing", "authentication"] | None = Field(
        default=None, description="the channel's pricing category this message falls into (WhatsApp)")
    free: bool | None = Field(default=None, description="whether the channel charges nothing for it")
    rendered_text: str | None = Field(default=None, description="the text as the customer sees it (timeline)")
    email: EmailOptions | None = Field(default=None, description="an email's subject, cc and bcc as sent")
    broadcast_id: str | None = Field(default=None, description="the broadcast this message was sent by (a reply "
                                     "to it opens a conversation that shows it); absent for one-to-one messages")
