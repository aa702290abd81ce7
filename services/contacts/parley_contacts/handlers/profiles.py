"""Messenger / Instagram names and pictures from the Graph API, off the message path: a consumer of contacts' own
parley.contacts.events.v1 (group `<group>-profiles`) looks up each new card's Messenger / Instagram identity
once, after the card exists; an agent's "refresh from the platform" looks them up again. A failed look-up is
logged and left (the card keeps what it had; the refresh action tries again), never retried in a loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from parley_common.auth import Principal
from parley_common.channels import Channels, InstagramChannel, MessengerChannel
from parley_common.errors import ApiError
from parley_common.events.contacts import ContactCreated, ContactEvent, ContactUpdated
from parley_common.kafka import EventPublisher
from parley_common.retries import Transient
from parley_common.topics import CONTACTS_EVENTS
from parley_contacts.adapters.contacts_repo import ContactsRepository
from parley_contacts.adapters.graph_profiles import GraphProfiles, ProfileUnavailable
from parley_contacts.domain.card import Card
from parley_contacts.domain.inbound import derived_event_id
from parley_contacts.domain.profiles import PROFILE_FIELDS, Profile, platform_identities, with_profile
from parley_contacts.handlers.card_service import ContactsService

log = structlog.get_logger(__name__)
ATTEMPTS = 5


class ProfileLookups:
    def __init__(self, contacts: ContactsService, repo: ContactsRepository, graph: GraphProfiles,
                 publisher: EventPublisher, channels: Channels) -> None:
        self._contacts = contacts
        self._repo = repo
        self._graph = graph
        self._publisher = publisher
        self._channels = channels

    async def on_contact_event(self, event: ContactEvent) -> None:
        """A new card: each of its Messenger / Instagram identities not yet looked up, once. The event names the
        card's identities: a card without one on such a channel (WhatsApp, Telegram, e-mail...) is not read."""
        if not isinstance(event, ContactCreated) or not any(
                self._has_profile(identity.channel_id) for identity in event.identities):
            return
        card = await self._repo.get(event.tenant_id, event.contact_id)
        for item in platform_identities(card, looked_up=False) if card else []:
            try:
                profile = await self._fetch(item)
            except ProfileUnavailable as failure:
                log.warning("profile_lookup_failed", contact_id=event.contact_id, channel_id=item["channel_id"],
                            reason=failure.reason)
                continue
            changed = await self._store(event.tenant_id, event.contact_id, item, profile)
            if changed:
                await self._publisher.publish(ContactUpdated(
                    event_id=derived_event_id(event.event_id, f"profile:{item['channel_id']}"),
                    occurred_at=self._contacts.now(), tenant_id=event.tenant_id,
                    correlation_id=event.correlation_id, contact_id=event.contact_id, changed=changed),
                    CONTACTS_EVENTS)

    async def refresh(self, principal: Principal, contact_id: str, correlation_id: str) -> Card:
        """An agent's "refresh from the platform": every Messenger / Instagram identity of the card, now; the
        platform's name and picture replace those it gave before (never the agent's own)."""
        card = await self._contacts.get(principal, contact_id)  # 404 for a card the caller may not see
        identities = platform_identities(card)
        if not identities:
            raise ApiError(422, "no_platform_profile", "the contact has no Messenger or Instagram identity")
        failures: list[str] = []
        changed: dict[str, Any] = {}
        for item in identities:
            try:
                profile = await self._fetch(item)
            except ProfileUnavailable as failure:
                failures.append(failure.reason)
                continue
            _, found = await self._contacts.edit(principal, contact_id,
                                                 _refreshed(item, profile, self._contacts.now()))
            changed.update(found)
        if len(failures) == len(identities):
            raise ApiError(502, "profile_unavailable", "the platform did not answer with a profile",
                           {"reason": failures[0]})
        if changed:
            await self._contacts.publish([ContactUpdated(**self._contacts.envelope(principal, contact_id,
                                                                                   correlation_id), changed=changed)])
        return await self._contacts.get(principal, contact_id)

    def _has_profile(self, channel_id: str) -> bool:
        channel = self._channels.get(channel_id)
        return channel is not None and channel.type in PROFILE_FIELDS

    async def _fetch(self, item: dict[str, Any]) -> Profile:
        channel = self._channels.get(item["channel_id"])
        if not isinstance(channel, MessengerChannel | InstagramChannel):
            raise ProfileUnavailable("channel_not_configured")
        return await self._graph.fetch(channel, item["external_user_id"])

    async def _store(self, tenant_id: str, contact_id: str, item: dict[str, Any],
                     profile: Profile) -> dict[str, Any]:
        for _ in range(ATTEMPTS):
            card = await self._repo.get(tenant_id, contact_id)
            if card is None:
                return {}  # merged away meanwhile: the surviving card's identity is looked up on refresh
            updated, changed = with_profile(card, item["channel_id"], item["external_user_id"], profile,
                                            self._contacts.now(), refresh=False)
            if await self._repo.replace(updated, card["version"]):
                return changed
        raise Transient("the card kept changing: the profile is stored on redelivery")


def _refreshed(item: dict[str, Any], profile: Profile, now: datetime) -> Callable[[Card], tuple[Card, dict[str, Any]]]:
    def change(card: Card) -> tuple[Card, dict[str, Any]]:
        return with_profile(card, item["channel_id"], item["external_user_id"], profile, now, refresh=True)

    return change
