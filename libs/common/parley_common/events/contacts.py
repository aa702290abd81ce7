"""What contacts publishes. Router and outbound keep projections from these (e.g. blocked identities).

Events about one channel identity are keyed by the conversation key; the others by tenant and contact."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from parley_common.events.envelope import Envelope, Frozen


class Identity(Frozen):
    channel_id: str
    external_user_id: str


class ContactEvent(Envelope):
    source = "parley/contacts"
    schema_version: Literal[1] = 1
    contact_id: str

    def partition_key(self) -> bytes:
        return f"{self.tenant_id}|contact|{self.contact_id}".encode()


PHONES = ("the contact's phone numbers (E.164), for finding the contact by phone; absent in events published "
          "before the field existed: read as none")


class ContactCreated(ContactEvent):
    type: Literal["parley.contact.created"] = "parley.contact.created"
    identities: tuple[Identity, ...] = ()
    display_name: str | None = None
    phones: tuple[str, ...] = Field(default=(), description=PHONES)


class ContactUpdated(ContactEvent):
    type: Literal["parley.contact.updated"] = "parley.contact.updated"
    changed: dict[str, Any] = Field(description="field name -> new value, for the fields that changed "
                                                "(`phones`: the whole new list, E.164)")


class ContactsMerged(ContactEvent):
    """`merged_contact_id` was folded into `contact_id`, which now holds all its identities."""

    type: Literal["parley.contact.merged"] = "parley.contact.merged"
    merged_contact_id: str
    identities: tuple[Identity, ...] = ()
    phones: tuple[str, ...] = Field(default=(), description=PHONES)


class IdentityEvent(ContactEvent):
    identity: Identity

    def partition_key(self) -> bytes:
        return f"{self.tenant_id}|{self.identity.channel_id}|{self.identity.external_user_id}".encode()


class ContactBlocked(IdentityEvent):
    type: Literal["parley.contact.blocked"] = "parley.contact.blocked"
    reason: str | None = None
    blocked_by: str | None = None


class ContactUnblocked(IdentityEvent):
    type: Literal["parley.contact.unblocked"] = "parley.contact.unblocked"
    unblocked_by: str | None = None


class ContactLabelled(ContactEvent):
    type: Literal["parley.contact.labelled"] = "parley.contact.labelled"
    labels: tuple[str, ...] = Field(description="the contact's labels after the change")
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class ContactCommented(ContactEvent):
    """A comment was added to the card. The text stays in contacts (`GET /v1/contacts/{id}/comments`): the topic
    says who wrote one and whom it mentions, so that a mentioned agent's screen hears of it at once."""

    type: Literal["parley.contact.commented"] = "parley.contact.commented"
    comment_id: str
    author: str = Field(description="the login of the comment's author")
    mentions: tuple[str, ...] = Field(default=(), description="the logins the comment mentions (@login, or the "
                                                              "author of the comment it replies to)")


ContactsTopicEvent = Annotated[
    ContactCreated | ContactUpdated | ContactsMerged | ContactBlocked | ContactUnblocked | ContactLabelled
    | ContactCommented,
    Field(discriminator="type"),
]
