"""Custom fields (with the tenant's field vocabulary) and comments with @mentions and replies."""

from __future__ import annotations

from typing import Any

from parley_common.auth import Principal
from parley_common.clock import Clock
from parley_common.errors import ApiError
from parley_common.events.contacts import ContactCommented, ContactUpdated
from parley_common.ids import new_id
from parley_contacts.adapters.contacts_repo import CommentsRepository, VocabularyRepository
from parley_contacts.domain import edits, validation
from parley_contacts.domain.card import Card
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.handlers.card_service import ContactsService, invalid


class FieldsService:
    def __init__(self, contacts: ContactsService, vocabulary: VocabularyRepository, clock: Clock) -> None:
        self._contacts = contacts
        self._vocabulary = vocabulary
        self._clock = clock

    async def set(self, principal: Principal, contact_id: str, name: str, kind: str, value: object,
                  correlation_id: str) -> Card:
        try:
            field = validation.field_name(name)
        except InvalidInput as exc:
            raise invalid(exc) from None
        known = await self._vocabulary.field_type(principal.tenant_id, field)
        now = self._clock.now()
        card, changed = await self._contacts.edit(
            principal, contact_id, lambda c: edits.set_field(c, field, kind, value, known, now))
        await self._vocabulary.remember(principal.tenant_id, "field", [field], card["custom_fields"][field]["type"])
        await self._contacts.publish([ContactUpdated(
            **self._contacts.envelope(principal, contact_id, correlation_id), changed=changed)])
        return card

    async def remove(self, principal: Principal, contact_id: str, name: str, correlation_id: str) -> Card:
        now = self._clock.now()
        card, changed = await self._contacts.edit(principal, contact_id, lambda c: edits.remove_field(c, name, now))
        await self._contacts.publish([ContactUpdated(
            **self._contacts.envelope(principal, contact_id, correlation_id), changed=changed)])
        return card


Mentions = list[tuple[dict[str, Any], Card]]  # (comment, its contact)


class CommentsService:
    """Comments are tied to the contact and visible to the whole team; a reply mentions the replied author."""

    def __init__(self, contacts: ContactsService, comments: CommentsRepository, clock: Clock) -> None:
        self._contacts = contacts
        self._comments = comments
        self._clock = clock

    async def add(self, principal: Principal, contact_id: str, text: str, reply_to: str | None,
                  correlation_id: str) -> dict[str, Any]:
        """Stored, then announced (`ContactCommented`: who wrote, whom it mentions; the router pushes it to the
        mentioned agents' live streams)."""
        await self._contacts.get(principal, contact_id)
        try:
            body = validation.comment_text(text)
        except InvalidInput as exc:
            raise invalid(exc) from None
        mentions = validation.mentions(body)
        if reply_to is not None:
            replied = await self._comments.get(principal.tenant_id, contact_id, reply_to)
            if replied is None:
                raise ApiError(422, "unknown_comment", "reply_to names no comment of this contact",
                               {"field": "reply_to"})
            if replied["author"] not in mentions and replied["author"] != principal.login:
                mentions.insert(0, replied["author"])
        comment = {"_id": new_id(), "tenant_id": principal.tenant_id, "contact_id": contact_id,
                   "author": principal.login, "text": body, "mentions": mentions, "reply_to": reply_to,
                   "created_at": self._clock.now()}
        await self._comments.add(comment)
        await self._contacts.publish([ContactCommented(
            **self._contacts.envelope(principal, contact_id, correlation_id), comment_id=comment["_id"],
            author=principal.login, mentions=tuple(mentions))])
        return comment

    async def list(self, principal: Principal, contact_id: str) -> list[dict[str, Any]]:
        await self._contacts.get(principal, contact_id)
        return await self._comments.list(principal.tenant_id, contact_id)

    async def mentions_of(self, principal: Principal, limit: int) -> Mentions:
        """The comments mentioning the caller, newest first, with their contact — only of contacts the caller
        may still see (a mention on another team's customer, or on a contact merged away, is left out)."""
        found: Mentions = []
        for comment in await self._comments.mentioning(principal.tenant_id, principal.login, limit):
            try:
                found.append((comment, await self._contacts.get(principal, comment["contact_id"])))
            except ApiError:
                continue
        return found
