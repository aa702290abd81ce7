"""Recording customer messages in bulk: the identity registry upsert that creates each contact exactly once,
then the cards, then last-seen and platform-name updates. Few round trips per batch, whatever its size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from parley_common.ids import new_id
from parley_common.mongo import DUPLICATE_KEY
from parley_contacts.adapters.collections import BY_ID, Collections, Doc, of_tenant
from parley_contacts.domain.card import Card, activity_key
from parley_contacts.domain.inbound import Sighting, first_message_card, platform_name_refresh

CustomerKey = tuple[str, str, str]


@dataclass
class Recorded:
    """What a batch did: contacts created (republished on redelivery), platform names refreshed."""

    created: list[tuple[Sighting, Card]] = field(default_factory=list)
    renamed: list[tuple[Sighting, str, dict[str, Any]]] = field(default_factory=list)


class SightingsStore:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def record(self, sightings: list[Sighting]) -> Recorded:
        """Register first (a new customer costs no lookup), then look up only the customers we already knew,
        or whose registration another consumer won."""
        proposed = await self._register(sightings)
        registry = await self._lookup([s.key for s in sightings if s.key not in proposed])
        registry.update(proposed)
        outcome = Recorded()
        created = [s for s in sightings if registry[s.key]["created_by_event_id"] == str(s.event.event_id)]
        cards = [first_message_card(s.event, registry[s.key]["contact_id"]) for s in created]
        await self._insert_cards(cards)
        outcome.created = list(zip(created, cards, strict=True))
        seen = [s for s in sightings if s not in created]
        outcome.renamed = await self._update_seen(seen, {s.key: registry[s.key]["contact_id"] for s in seen})
        return outcome

    async def _lookup(self, keys: list[CustomerKey]) -> dict[CustomerKey, Doc]:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for tenant_id, channel_id, external_user_id in keys:
            groups[(tenant_id, channel_id)].append(external_user_id)
        found: dict[CustomerKey, Doc] = {}
        for (tenant_id, channel_id), external_ids in groups.items():
            query = {"tenant_id": tenant_id, "channel_id": channel_id, "external_user_id": {"$in": external_ids}}
            async for doc in self._c.identities.find(query, {"_id": 0}):
                found[(tenant_id, channel_id, doc["external_user_id"])] = doc
        return found

    async def _register(self, sightings: list[Sighting]) -> dict[CustomerKey, Doc]:
        """Upsert one registry entry per customer; returns the entries this call inserted. A concurrent consumer
        that wins the race makes ours a no-op match (or a duplicate-key error, ignored) and the lookup that
        follows returns the single winner."""
        entries = [{"contact_id": new_id(), "created_by_event_id": str(s.event.event_id)} for s in sightings]
        operations = [
            UpdateOne(
                {"tenant_id": s.event.tenant_id, "channel_id": s.event.channel_id,
                 "external_user_id": s.event.external_user_id},
                {"$setOnInsert": {**entry, "created_at": s.event.received_at}},
                upsert=True,
            )
            for s, entry in zip(sightings, entries, strict=True)
        ]
        try:
            inserted = (await self._c.identities.bulk_write(operations, ordered=False)).upserted_ids or {}
        except BulkWriteError as exc:
            _raise_unless_duplicates(exc)
            inserted = {item["index"]: item["_id"] for item in exc.details.get("upserted", [])}
        return {sightings[index].key: entries[index] for index in inserted}

    async def _insert_cards(self, cards: list[Card]) -> None:
        """Insert, not upsert (twice as fast here); a card already there (a redelivery) is a duplicate, ignored."""
        if cards:
            await _ignoring_duplicates(self._c.contacts.bulk_write([InsertOne(card) for card in cards], ordered=False))

    async def _update_seen(self, sightings: list[Sighting],
                           contact_ids: dict[CustomerKey, str]) -> list[tuple[Sighting, str, dict[str, Any]]]:
        if not sightings:
            return []
        named = [s for s in sightings if s.event.customer.profile_name and s.is_customer_message]
        cards = await self._cards(named, contact_ids)
        operations: list[UpdateOne] = []
        renamed: list[tuple[Sighting, str, dict[str, Any]]] = []
        for sighting in sightings:
            contact_id = contact_ids[sighting.key]
            operations.append(_seen_update(sighting, contact_id))
            card = cards.get(contact_id)
            if card is None:
                continue
            changes = platform_name_refresh(card, sighting.event)
            if changes is not None:
                operations.append(UpdateOne(
                    {"_id": contact_id, "tenant_id": sighting.event.tenant_id,
                     "platform_name_at": card.get("platform_name_at")},
                    {"$set": changes, "$inc": {"version": 1}}, hint=BY_ID,
                ))
                renamed.append((sighting, contact_id, changes))
            elif card.get("platform_name_event_id") == str(sighting.event.event_id):
                renamed.append((sighting, contact_id, {"platform_name": card["platform_name"]}))  # redelivery
        await self._c.contacts.bulk_write(operations, ordered=True)
        return renamed

    async def _cards(self, sightings: list[Sighting], contact_ids: dict[CustomerKey, str]) -> dict[str, Card]:
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for sighting in sightings:
            by_tenant[sighting.event.tenant_id].append(contact_ids[sighting.key])
        cards: dict[str, Card] = {}
        for tenant_id, ids in by_tenant.items():
            async for card in self._c.contacts.find({"_id": {"$in": ids}}):  # see `of_tenant`
                if of_tenant(card, tenant_id) is not None:
                    cards[card["_id"]] = card
        return cards


def _seen_update(sighting: Sighting, contact_id: str) -> UpdateOne:
    event = sighting.event
    latest: dict[str, Any] = {"last_activity_at": event.provider_timestamp,
                              "activity_key": activity_key(event.provider_timestamp, contact_id)}
    if sighting.is_customer_message:
        latest["last_seen_at"] = event.provider_timestamp
    return UpdateOne({"_id": contact_id, "tenant_id": event.tenant_id}, {"$max": latest}, hint=BY_ID)


async def _ignoring_duplicates(write: Any) -> None:
    try:
        await write
    except BulkWriteError as exc:
        _raise_unless_duplicates(exc)


def _raise_unless_duplicates(exc: BulkWriteError) -> None:
    others = [error for error in exc.details.get("writeErrors", []) if error.get("code") != DUPLICATE_KEY]
    if others or exc.details.get("writeConcernErrors"):
        raise exc
