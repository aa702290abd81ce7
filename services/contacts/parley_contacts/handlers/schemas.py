"""HTTP request and response bodies (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from parley_contacts.domain import pictures
from parley_contacts.domain.card import Card


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IdentityOut(BaseModel):
    channel_id: str
    channel_type: str | None = None
    external_user_id: str
    username: str | None = None
    phone: str | None = None
    platform_name: str | None = None
    blocked: bool = False
    blocked_at: datetime | None = None
    blocked_by: str | None = None
    block_reason: str | None = None
    marketing_opted_out: bool | None = Field(
        default=None, description="the customer stopped (true) or resumed (false) marketing messages on this "
        "identity's channel; null when they never said")
    marketing_preference_at: datetime | None = None
    blocked_the_bot: bool | None = Field(default=None, description="Telegram: the customer blocked the bot (true) "
                                         "or started it again (false); null when never heard")


class ContactOut(BaseModel):
    id: str
    display_name: str | None = None
    platform_name: str | None = None
    avatar_url: str | None = None
    avatar_from_platform: bool = Field(default=True, description="the picture came from the platform (Viber, Meta): "
                                       "`GET /v1/contacts/{id}/avatar` serves it; false for a URL an agent set")
    phones: list[str] = []
    emails: list[str] = []
    external_id: str | None = None
    identities: list[IdentityOut] = []
    labels: list[str] = []
    custom_fields: dict[str, Any] = Field(default={}, description="name -> {type, value}")
    comment: str | None = Field(default=None, description="internal comment; the customer never sees it")
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None = None
    last_activity_at: datetime
    merged_from: list[str] = []

    @classmethod
    def of(cls, card: Card) -> ContactOut:
        return cls.model_validate({**card, "id": card["_id"],
                                   "avatar_from_platform": pictures.from_platform(card)},
                                  from_attributes=False)


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page; null at the end")


class CreateContact(Body):
    phone: str = Field(description="with the country code, at least 7 digits", max_length=32)
    display_name: str | None = Field(default=None, max_length=256)
    channel_id: str | None = Field(default=None, max_length=128,
                                   description="a WhatsApp/Viber channel to register the phone on as an identity")
    email: str | None = Field(default=None, max_length=254)
    external_id: str | None = Field(default=None, max_length=256)


class PatchContact(Body):
    display_name: str | None = Field(default=None, max_length=256)
    avatar_url: str | None = Field(default=None, max_length=2048)
    phones: list[str] | None = None
    emails: list[str] | None = None
    external_id: str | None = Field(default=None, max_length=256)
    comment: str | None = Field(default=None, max_length=4000)


class LabelsChange(Body):
    add: list[str] = Field(default=[], max_length=50)
    remove: list[str] = Field(default=[], max_length=50)


class FieldValue(Body):
    type: str = Field(description="text, number, boolean or date (ISO 8601)")
    value: str | float | bool


class BlockRequest(Body):
    channel_id: str = Field(max_length=128)
    external_user_id: str | None = Field(default=None, max_length=512,
                                         description="one identity; omitted: every identity on the channel")
    reason: str | None = Field(default=None, max_length=500)


class MergeRequest(Body):
    other_contact_id: str = Field(max_length=64, description="folded into this contact, then kept as history")


class CommentIn(Body):
    text: str = Field(max_length=4000)
    reply_to: str | None = Field(default=None, max_length=64, description="id of the comment this answers")


class CommentOut(BaseModel):
    id: str
    contact_id: str
    author: str
    text: str
    mentions: list[str]
    reply_to: str | None = None
    created_at: datetime


class MentionOut(CommentOut):
    contact_name: str | None = Field(description="the contact's display name, else its first phone")


class VocabularyItem(BaseModel):
    name: str
    type: str | None = None
