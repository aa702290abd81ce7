"""Consumer of parley.inbound.preferences.v1: a customer's marketing opt-out (or its withdrawal) on their card."""

from __future__ import annotations

import structlog

from parley_common.events.inbound import MarketingPreferenceChanged
from parley_common.retries import Transient
from parley_contacts.adapters.contacts_repo import ContactsRepository
from parley_contacts.domain.preferences import with_marketing_preference

ATTEMPTS = 5
log = structlog.get_logger(__name__)


class PreferenceHandler:
    def __init__(self, repo: ContactsRepository) -> None:
        self._repo = repo

    async def __call__(self, event: MarketingPreferenceChanged) -> None:
        contact_id = await self._repo.owner_of(event.tenant_id, event.channel_id, event.external_user_id)
        if contact_id is None:
            # No card yet (the customer never wrote): outbound still refuses marketing from its own projection.
            log.info("marketing_preference_without_contact", channel_id=event.channel_id)
            return
        for _ in range(ATTEMPTS):
            card = await self._repo.get(event.tenant_id, contact_id)
            if card is None:
                return
            updated = with_marketing_preference(card, event.channel_id, event.external_user_id, event.opted_out,
                                                event.provider_timestamp)
            if updated is None or await self._repo.replace(updated, card["version"]):
                return
        raise Transient("the contact kept changing; the preference is delivered again")
