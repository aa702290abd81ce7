"""Use cases behind the HTTP API: load the card, apply a domain edit, store it optimistically, publish."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from parley_common.auth import Principal
from parley_common.channels import Channels
from parley_common.clock import Clock
from parley_common.errors import ApiError
from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactEvent,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
    Identity,
)
from parley_common.ids import ConversationKey, new_id
from parley_common.kafka import EventPublisher
from parley_common.topics import CONTACTS_EVENTS
from parley_common.visibility_store import VisibilityProjection
from parley_contacts.adapters.contacts_repo import ContactsRepository, IdentityTaken
from parley_contacts.domain import edits, validation
from parley_contacts.domain.card import Card, identity, new_card, with_keys
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.merge import merge_cards

T = TypeVar("T")
ATTEMPTS = 5


def invalid(exc: InvalidInput) -> ApiError:
    return ApiError(422, exc.code, exc.message, {"field": exc.field} if exc.field else None)


def identities_of(card: Card) -> tuple[Identity, ...]:
    return tuple(Identity(channel_id=i["channel_id"], external_user_id=i["external_user_id"])
                 for i in card["identities"])


def keys_of(card: Card) -> list[ConversationKey]:
    return [ConversationKey(card["tenant_id"], i["channel_id"], i["external_user_id"]) for i in card["identities"]]


class ContactsService:
    def __init__(self, repo: ContactsRepository, publisher: EventPublisher, clock: Clock, channels: Channels,
                 visibility: VisibilityProjection) -> None:
        self.repo = repo
        self._publisher = publisher
        self._clock = clock
        self._channels = channels
        self._visibility = visibility

    def now(self) -> datetime:
        return self._clock.now()

    async def publish(self, events: list[ContactEvent]) -> None:
        await self._publisher.publish_together(events, CONTACTS_EVENTS)

    def envelope(self, principal: Principal, contact_id: str, correlation_id: str) -> dict[str, Any]:
        return {"occurred_at": self._clock.now(), "tenant_id": principal.tenant_id,
                "correlation_id": correlation_id, "contact_id": contact_id}

    async def get(self, principal: Principal, contact_id: str) -> Card:
        card = await self.repo.get(principal.tenant_id, contact_id)
        if card is not None:
            # another team's customer reads as absent (parley_common.visibility)
            await self._visibility.require(principal, keys_of(card), ApiError(404, "contact_not_found",
                                                                               "no such contact"))
            return card
        merged_into = await self.repo.merged_into(principal.tenant_id, contact_id)
        if merged_into:
            raise ApiError(404, "contact_merged", "the contact was merged into another",
                           {"merged_into": merged_into})
        raise ApiError(404, "contact_not_found", "no such contact")

    async def visible(self, principal: Principal, cards: list[Card]) -> list[Card]:
        """The cards of a page the caller may see (a search never lists another team's customers)."""
        shown = await self._visibility.visible_each(principal, [keys_of(card) for card in cards])
        return [card for card, show in zip(cards, shown, strict=True) if show]

    async def create(self, principal: Principal, body: dict[str, Any], correlation_id: str) -> Card:
        try:
            phone = validation.phone(body["phone"])
            email = validation.email(body["email"]) if body.get("email") else None
            name = validation.display_text(body["display_name"], "display_name") if body.get("display_name") else None
        except InvalidInput as exc:
            raise invalid(exc) from None
        if body.get("channel_id"):
            self._channels.for_caller(principal.tenant_id, body["channel_id"], status=422)
        contact_id = new_id()
        identities = [identity(body["channel_id"], phone.removeprefix("+"), phone=phone)] if body.get("channel_id") \
            else []
        card = new_card(contact_id, principal.tenant_id, self._clock.now(), identities=identities, phones=[phone],
                        display_name=name)
        card["emails"] = [email] if email else []
        card["external_id"] = body.get("external_id")
        card = with_keys(card)
        try:
            await self.repo.create(card)
        except IdentityTaken as taken:
            raise ApiError(409, "identity_taken", "that phone is already a contact on this channel",
                           {"contact_id": taken.contact_id}) from None
        await self.publish([ContactCreated(**self.envelope(principal, contact_id, correlation_id),
                                           identities=identities_of(card), display_name=card["display_name"],
                                           phones=tuple(card["phones"]))])
        return card

    async def edit(self, principal: Principal, contact_id: str,
                   change: Callable[[Card], tuple[Card, T]]) -> tuple[Card, T]:
        """Read, change, write-if-unchanged; a concurrent writer makes us re-read and re-apply."""
        for _ in range(ATTEMPTS):
            card = await self.get(principal, contact_id)
            try:
                updated, result = change(card)
            except InvalidInput as exc:
                raise invalid(exc) from None
            if await self.repo.replace(updated, card["version"]):
                updated["version"] = card["version"] + 1
                return updated, result
        raise ApiError(409, "concurrent_update", "the contact is being changed by others; try again")

    async def patch(self, principal: Principal, contact_id: str, patch: dict[str, Any],
                    correlation_id: str) -> Card:
        now = self._clock.now()
        card, changed = await self.edit(principal, contact_id, lambda c: edits.apply_patch(c, patch, now))
        if changed:
            await self.publish([ContactUpdated(**self.envelope(principal, contact_id, correlation_id),
                                               changed=changed)])
        return card

    async def change_labels(self, principal: Principal, contact_id: str, add: list[str], remove: list[str],
                            correlation_id: str) -> Card:
        now = self._clock.now()
        card, (added, removed) = await self.edit(
            principal, contact_id, lambda c: _split(edits.change_labels(c, add, remove, now)))
        if added or removed:
            await self.publish([ContactLabelled(**self.envelope(principal, contact_id, correlation_id),
                                                labels=tuple(card["labels"]), added=tuple(added),
                                                removed=tuple(removed))])
        return card

    async def set_blocked(self, principal: Principal, contact_id: str, body: dict[str, Any], blocked: bool,
                          correlation_id: str) -> Card:
        now = self._clock.now()
        card, changed = await self.edit(principal, contact_id, lambda c: edits.set_blocked(
            c, body["channel_id"], body.get("external_user_id"), blocked, by=principal.login,
            reason=body.get("reason"), now=now))
        envelope = self.envelope(principal, contact_id, correlation_id)
        events: list[ContactEvent] = []
        for item in changed:
            ident = Identity(channel_id=item["channel_id"], external_user_id=item["external_user_id"])
            events.append(ContactBlocked(**envelope, identity=ident, reason=body.get("reason"),
                                         blocked_by=principal.login) if blocked
                          else ContactUnblocked(**envelope, identity=ident, unblocked_by=principal.login))
        await self.publish(events)
        return card

    async def merge(self, principal: Principal, contact_id: str, other_id: str, correlation_id: str) -> Card:
        for _ in range(ATTEMPTS):
            primary = await self.get(principal, contact_id)
            secondary = await self.get(principal, other_id)
            try:
                merged = merge_cards(primary, secondary, self._clock.now())
            except InvalidInput as exc:
                raise invalid(exc) from None
            if await self.repo.merge(merged, primary["version"], secondary, principal.login, self._clock.now()):
                await self.publish([ContactsMerged(**self.envelope(principal, contact_id, correlation_id),
                                                   merged_contact_id=other_id,
                                                   identities=identities_of(merged),
                                                   phones=tuple(merged["phones"]))])
                return merged
        raise ApiError(409, "concurrent_update", "the contacts are being changed by others; try again")


def _split(result: tuple[Card, list[str], list[str]]) -> tuple[Card, tuple[list[str], list[str]]]:
    card, added, removed = result
    return card, (added, removed)
