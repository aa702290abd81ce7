"""Consumer of parley.contacts.events.v1: the router's projection of customers' cards, and what of it the
conversations show (contact id, name, phone, labels, custom fields, blocked)."""

from __future__ import annotations

from parley_common.events.contacts import (
    ContactBlocked,
    ContactCreated,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.ids import ConversationKey
from parley_router.adapters.directory import Doc, contact_summary, identity_keys
from parley_router.domain import contact_fields
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import ContactSummary, Conversation
from parley_router.handlers.engine import Engine

CARD_FIELDS = ("display_name", "platform_name", "phones", "emails", "phone_e164", "email")
CONVERSATIONS_PER_IDENTITY = 500


class ContactsHandler:
    """Keeps the projection (routing on labels / custom fields, search, export), then brings the card to the
    customer's conversations: the open ones change at once (an inbox label filter sees a label added mid-chat,
    a block leaves the queue), closed ones learn their contact id (a customer's history)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.directory = engine.stores.directory
        self.conversations = engine.stores.conversations

    async def __call__(self, event: object) -> None:
        if isinstance(event, ContactBlocked | ContactUnblocked):
            key = ConversationKey(event.tenant_id, event.identity.channel_id, event.identity.external_user_id)
            await self.directory.set_blocked(key, isinstance(event, ContactBlocked))
            await self._block(key, isinstance(event, ContactBlocked))
            return
        card: Doc | None = None
        if isinstance(event, ContactCreated | ContactsMerged):
            identities = [f"{i.channel_id}|{i.external_user_id}" for i in event.identities]
            named = {"name": event.display_name} if isinstance(event, ContactCreated) and event.display_name else {}
            card = await self.directory.update_contact(event.tenant_id, event.contact_id, fields=named,
                                                       identities=identities)
            if isinstance(event, ContactsMerged):
                await self.directory.fold_merged(event.tenant_id, event.contact_id, event.merged_contact_id,
                                                 identities)
                card = None  # changed again by the fold: read as it is now
        elif isinstance(event, ContactLabelled):
            card = await self.directory.update_contact(event.tenant_id, event.contact_id,
                                                       fields={"labels": list(event.labels)})
        elif isinstance(event, ContactUpdated):
            card = await self._updated(event)
        else:
            return
        await self._show(event.tenant_id, event.contact_id, card)

    async def _updated(self, event: ContactUpdated) -> Doc | None:
        """The card after the change, or None when nothing it keeps changed."""
        wanted = {k: v for k, v in event.changed.items() if k in CARD_FIELDS}
        to_set, to_drop = contact_fields.field_changes(event.changed)
        if not (wanted or to_set or to_drop):
            return None
        return await self.directory.update_contact(event.tenant_id, event.contact_id, fields=wanted,
                                                   custom_set=to_set, custom_drop=to_drop)

    async def _show(self, tenant_id: str, contact_id: str, card: Doc | None) -> None:
        """`card`: the card as just written (None: read it); one merged into another shows the surviving one."""
        doc = card if card is not None and not card.get("merged_into") else await self.directory.contact(
            tenant_id, contact_id)
        if doc is None:
            return
        summary = contact_summary(doc)
        for key in identity_keys(tenant_id, doc):
            for conv in await self.conversations.of_identity(key, CONVERSATIONS_PER_IDENTITY):
                await self._show_on(conv, summary)

    async def _show_on(self, conv: Conversation, summary: ContactSummary) -> None:
        if conv.is_open:
            # no dispatch: a card changes nothing about who may take it (rules only route a new conversation)
            await self.engine.change(conv, lambda c: conv_rules.with_contact(c, summary), "contact_changed",
                                     "contacts", dispatch_after=False)
        elif conv.contact_id != summary.contact_id:
            await self.conversations.set_contact_id(conv.id, summary.contact_id)

    async def _block(self, key: ConversationKey, blocked: bool) -> None:
        """At once, not at the customer's next message (a concurrent save fails this record: it comes again)."""
        conv = await self.conversations.open_for(key)
        if conv is None or conv.blocked == blocked:
            return
        now = self.engine.clock.now()
        await self.engine.change(conv, lambda c: conv_rules.set_blocked(c, blocked, now),
                                 "blocked" if blocked else "unblocked", "contacts")
