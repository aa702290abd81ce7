"""Consumer of parley.contacts.events.v1, a batch at a time: the router's projection of customers' cards, and
what of it the conversations show (contact id, name, phone, labels, custom fields, blocked)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.ids import ConversationKey
from parley_router.adapters.contact_cards import CardChange
from parley_router.adapters.conversations import StaleVersion
from parley_router.adapters.directory import Doc, contact_summary, identity_keys
from parley_router.domain import contact_fields
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import ContactSummary, Conversation
from parley_router.handlers.engine import Engine

CARD_FIELDS = ("display_name", "platform_name", "phones", "emails", "phone_e164", "email")
CONVERSATIONS_PER_IDENTITY = 500
SAVE_ATTEMPTS = 3  # a conversation saved meanwhile (its customer wrote) is read again; then the batch comes again


def card_change(event: object) -> CardChange | None:
    """What the event changes on the card; None when nothing the router keeps of it."""
    if isinstance(event, ContactCreated | ContactsMerged):
        identities = tuple(f"{i.channel_id}|{i.external_user_id}" for i in event.identities)
        named = {"name": event.display_name} if isinstance(event, ContactCreated) and event.display_name else {}
        merged = event.merged_contact_id if isinstance(event, ContactsMerged) else None
        return CardChange(str(event.event_id), event.tenant_id, event.contact_id, fields=named, identities=identities,
                          merged_contact_id=merged, creates=isinstance(event, ContactCreated))
    if isinstance(event, ContactLabelled):
        return CardChange(str(event.event_id), event.tenant_id, event.contact_id, fields={"labels": list(event.labels)})
    if isinstance(event, ContactUpdated):
        wanted = {k: v for k, v in event.changed.items() if k in CARD_FIELDS}
        to_set, to_drop = contact_fields.field_changes(event.changed)
        if wanted or to_set or to_drop:
            return CardChange(str(event.event_id), event.tenant_id, event.contact_id, fields=wanted,
                              custom_set=to_set, custom_drop=to_drop)
    return None


class ContactsHandler:
    """Keeps the projection (routing on labels / custom fields, search, export), then brings each card the batch
    touched to the customer's conversations: the open ones change at once (an inbox label filter sees a label
    added mid-chat, a block leaves the queue), closed ones learn their contact id (a customer's history).

    A batch costs the same few round trips whatever its size: the cards' changes in one bulk write and the cards
    read back in one query, the conversations of all their identities in one query per channel, the changed open
    conversations saved in one bulk write (the engine's batched saves) and the closed ones linked in another; the
    blocked identities in one write. Replays change nothing (each card change is applied once, by its event id),
    and a card is shown again on every delivery: an attempt that stopped after storing it still shows it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.directory = engine.stores.directory
        self.conversations = engine.stores.conversations

    async def __call__(self, events: Sequence[object]) -> None:
        blocked = {ConversationKey(e.tenant_id, e.identity.channel_id, e.identity.external_user_id):
                   isinstance(e, ContactBlocked) for e in events if isinstance(e, ContactBlocked | ContactUnblocked)}
        if blocked:
            await self.directory.set_blocked(blocked)
            await asyncio.gather(*(self._block(key, is_blocked) for key, is_blocked in blocked.items()))
        changes = [change for change in map(card_change, events) if change is not None]
        cards = await self.directory.change_cards(changes)
        shown = [await self._surviving(card) for card in cards.values()]
        await self._show([card for card in shown if card is not None])

    async def _surviving(self, card: Doc) -> Doc | None:
        """A card folded into another shows the one it was folded into."""
        if not card.get("merged_into"):
            return card
        return await self.directory.contact(card["tenant_id"], card["merged_into"])

    async def _show(self, cards: list[Doc]) -> None:
        summaries = {key: contact_summary(card) for card in cards for key in identity_keys(card["tenant_id"], card)}
        if not summaries:
            return
        found = await self.conversations.of_identities(summaries, CONVERSATIONS_PER_IDENTITY)
        links: dict[str, str] = {}
        showing = []
        for key, convs in found.items():
            summary = summaries[key]
            showing += [self._show_on(conv, summary) for conv in convs if conv.is_open]
            links.update({conv.id: summary.contact_id for conv in convs
                          if not conv.is_open and conv.contact_id != summary.contact_id})
        await asyncio.gather(*showing)  # together: their saves share one bulk write
        await self.conversations.set_contact_ids(links)

    async def _show_on(self, conv: Conversation, summary: ContactSummary) -> None:
        for attempt in range(SAVE_ATTEMPTS):
            try:
                # no dispatch: a card changes nothing about who may take it (rules only route a new conversation)
                await self.engine.change(conv, lambda c: conv_rules.with_contact(c, summary), "contact_changed",
                                         "contacts", dispatch_after=False)
                return
            except StaleVersion:
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                current = await self.conversations.get(conv.tenant_id, conv.id)
                if current is None:
                    return
                conv = current

    async def _block(self, key: ConversationKey, blocked: bool) -> None:
        """At once, not at the customer's next message (a concurrent save fails this batch: it comes again)."""
        conv = await self.conversations.open_for(key)
        if conv is None or conv.blocked == blocked:
            return
        now = self.engine.clock.now()
        await self.engine.change(conv, lambda c: conv_rules.set_blocked(c, blocked, now),
                                 "blocked" if blocked else "unblocked", "contacts")
