"""What ingest publishes: customer messages and delivery statuses, normalised across channels."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from parley_common.events.common import ChannelType
from parley_common.events.envelope import ConversationScoped, Frozen

RAW_LIMIT_BYTES = 64 * 1024


class Customer(Frozen):
    """The customer as the channel describes them. `external_user_id` on the event is the stable key
    (WhatsApp: business-scoped user id when present, else wa_id; PSID; IGSID; Telegram id; Viber id; email)."""

    phone_e164: str | None = None
    wa_id: str | None = None
    business_scoped_user_id: str | None = None
    username: str | None = None
    profile_name: str | None = None
    email: str | None = None
    language: str | None = None
    avatar_url: str | None = Field(default=None, description="the channel's profile picture (Viber `avatar`)")


class TextPart(Frozen):
    kind: Literal["text"] = "text"
    text: str
    html: str | None = None


class MediaKind(StrEnum):
    IMAGE = "image"
    AUDIO = "audio"
    VOICE = "voice"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    FILE = "file"


class MediaPart(Frozen):
    """An attachment as the provider references it; media fetches the bytes and publishes MediaStored.

    `source` says how to get the bytes: `provider_id` (WhatsApp media id, Telegram file_id), `url`
    (Messenger/Instagram/Viber URL), or `email_attachment` (the bytes travel on
    parley.inbound.attachments.v1 under `attachment_id`, never leaving the cluster).
    """

    kind: Literal["media"] = "media"
    media_kind: MediaKind
    source: Literal["provider_id", "url", "email_attachment"]
    reference: str = Field(description="provider media id, URL, or attachment id, per `source`")
    attachment_id: str = Field(description="stable id of this attachment: provider message id + index")
    mime_type: str | None = None
    file_name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    caption: str | None = None


class LocationPart(Frozen):
    kind: Literal["location"] = "location"
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = Field(default=None, description="the chosen place's web page (WhatsApp, Telegram venues)")


class SharedContact(Frozen):
    name: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


class ContactsPart(Frozen):
    kind: Literal["contacts"] = "contacts"
    contacts: tuple[SharedContact, ...]


class ReplyPart(Frozen):
    """A button, list, quick-reply, postback or callback choice."""

    kind: Literal["reply"] = "reply"
    reply_kind: Literal["button", "list", "quick_reply", "postback", "callback"]
    payload: str | None = None
    title: str | None = None
    description: str | None = Field(default=None, description="the chosen list row's description (WhatsApp)")


class FlowReplyPart(Frozen):
    """A completed WhatsApp Flow (`interactive.nfm_reply`): the form's answers as the customer submitted them."""

    kind: Literal["flow_reply"] = "flow_reply"
    name: str | None = Field(default=None, description="`flow` for a Flow; Meta's name for the reply kind")
    body: str | None = Field(default=None, description="the text the customer's app showed, e.g. 'Sent'")
    response: dict[str, Any] | None = Field(
        default=None, description="`response_json` parsed (the Flow's answers and its `flow_token`); None when it "
        "is not a JSON object (the event's `raw` keeps it)")


class ReactionPart(Frozen):
    kind: Literal["reaction"] = "reaction"
    target_provider_message_id: str
    emoji: str | None = Field(default=None, description="None when a reaction is removed")


class OrderPart(Frozen):
    kind: Literal["order"] = "order"
    catalog_id: str | None = None
    items: tuple[dict[str, Any], ...] = ()
    text: str | None = None


class SystemPart(Frozen):
    """Channel notices: number changed, user subscribed/unsubscribed, conversation started…"""

    kind: Literal["system"] = "system"
    system_kind: str
    text: str | None = None


class UnsupportedPart(Frozen):
    """Something the channel sent that we do not model yet; the event's `raw` keeps it."""

    kind: Literal["unsupported"] = "unsupported"
    provider_type: str
    description: str | None = None


ContentPart = Annotated[
    TextPart | MediaPart | LocationPart | ContactsPart | ReplyPart | FlowReplyPart | ReactionPart | OrderPart
    | SystemPart | UnsupportedPart,
    Field(discriminator="kind"),
]


class Referral(Frozen):
    """How the customer arrived (click-to-WhatsApp ad, Page button, m.me link…).

    `free_entry_point` marks the 72-hour free entry point: pricing only, never the window."""

    source_type: str | None = None
    source_id: str | None = None
    source_url: str | None = None
    headline: str | None = None
    ctwa_clid: str | None = None
    free_entry_point: bool = False


class EmailHeaders(Frozen):
    subject: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    automatic: str | None = Field(
        default=None, description="why this mail was sent by a machine (auto-replied, auto-generated, "
        "delivery_report, null_sender, precedence_bulk…): it never opens a conversation or a contact")


class MessageReceived(ConversationScoped):
    """A customer wrote to us (or, with `direction='echo'`, the business wrote from another app)."""

    source = "parley/ingest"
    type: Literal["parley.message.received"] = "parley.message.received"
    schema_version: Literal[1] = 1
    channel_type: ChannelType
    customer: Customer
    provider_message_id: str = Field(min_length=1)
    provider_timestamp: AwareDatetime = Field(description="when the customer sent it; the window clock starts here")
    received_at: AwareDatetime
    parts: tuple[ContentPart, ...]
    direction: Literal["inbound", "echo"] = "inbound"
    reply_to_provider_message_id: str | None = None
    forwarded: bool = False
    edited: bool = False
    group_id: str | None = Field(
        default=None, description="messages the customer sent together (a Telegram album's media_group_id): "
        "shown as one timeline entry")
    referral: Referral | None = None
    email: EmailHeaders | None = None
    raw: dict[str, Any] | None = Field(
        default=None, description=f"the provider's payload for this message, when under {RAW_LIMIT_BYTES} bytes"
    )
    raw_truncated: bool = False


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    DELETED = "deleted"


class ProviderError(Frozen):
    code: str
    title: str | None = None
    detail: str | None = None


class Pricing(Frozen):
    category: str | None = None
    billable: bool | None = None
    pricing_model: str | None = None
    conversation_id: str | None = None
    conversation_origin: str | None = None
    conversation_expires_at: datetime | None = None
    pricing_type: str | None = Field(
        default=None, description="WhatsApp pricing.type: regular, free_customer_service, free_entry_point"
    )


class DeliveryStatusReported(ConversationScoped):
    """The channel reports what happened to a message we sent."""

    source = "parley/ingest"
    type: Literal["parley.delivery.status_reported"] = "parley.delivery.status_reported"
    schema_version: Literal[1] = 1
    channel_type: ChannelType
    provider_message_id: str = Field(min_length=1)
    status: DeliveryStatus
    provider_timestamp: AwareDatetime
    errors: tuple[ProviderError, ...] = ()
    pricing: Pricing | None = None
    raw: dict[str, Any] | None = None
    watermark: AwareDatetime | None = Field(
        default=None,
        description="Messenger delivery/read watermark, Viber seen: every message sent to this customer at or "
        "before this time has this status (provider_message_id may then be a synthetic 'watermark:…' id)",
    )


class MarketingPreferenceChanged(ConversationScoped):
    """A customer stopped or resumed marketing messages on a channel (WhatsApp `user_preferences`). Marketing
    templates to a customer who stopped fail at the provider (131050, never retried): outbound refuses them first."""

    source = "parley/ingest"
    type: Literal["parley.customer.marketing_preference_changed"] = "parley.customer.marketing_preference_changed"
    schema_version: Literal[1] = 1
    channel_type: ChannelType
    opted_out: bool = Field(description="True: the customer stopped marketing messages; False: resumed them")
    category: str = Field(default="marketing_messages", description="the provider's category of messages")
    detail: str | None = Field(default=None, description="the provider's human-readable description")
    provider_timestamp: AwareDatetime


class EmailAttachmentReceived(ConversationScoped):
    """The bytes of one inbound email attachment, handed from ingest to media inside the cluster."""

    source = "parley/ingest"
    type: Literal["parley.email.attachment_received"] = "parley.email.attachment_received"
    schema_version: Literal[1] = 1
    provider_message_id: str
    attachment_id: str
    file_name: str | None = None
    declared_mime_type: str | None = None
    content_base64: str
