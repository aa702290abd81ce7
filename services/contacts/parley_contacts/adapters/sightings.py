"""Recording customer messages in bulk: a consumer batch's customers looked up in the identity registry with
their cards, the new ones registered (the unique index creates each contact exactly once), their cards inserted,
then last-seen and platform-name updates. A few round trips per batch, whatever its size."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from parley_common.ids import contact_id_of_first_message
from parley_common.mongo import DUPLICATE_KEY
from parley_common.retries import Transient
from parley_contacts.adapters.collections import BY_ID, Collections, Doc, of_tenant
from parley_contacts.domain.card import Card, activity_key
from parley_contacts.domain.inbound import Sighting, first_sighting_card, refreshed

CustomerKey = tuple[str, str, str]
RENAME = ("platform_name", "platform_name_event_id")


@dataclass
class Recorded:
    """What a batch did: contacts created, platform names refreshed (each republished on redelivery, with the
    event that changed the name: `platform_name_event_id`)."""

    created: list[tuple[Sighting, Card]] = field(default_factory=list)
    renamed: list[tuple[Sighting, str, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class Registered:
    """A customer's registry entry, and its card as read with it (None: not inserted yet)."""

    contact_id: str
    by_a_message: bool  # registered by a customer's message (else by an agent creating the card, who inserts it)
    card: Card | None = None


class RegistrationRaced(Transient):
    """An identity's registration failed as a duplicate, but its entry was gone when read: the batch comes again."""


class SightingsStore:
    def __init__(self, collections: Collections) -> None:
        self._c = collections

    async def record(self, sightings: list[Sighting]) -> Recorded:
        """Look the batch's customers up first (a `$lookup` brings their cards in the same round trip), then
        register the new ones with one insert (far cheaper for the database than an upsert per customer), so a
        new customer costs a registry insert and a card insert, a known one its last-seen update.

        A card is inserted wherever the registry names none: for a customer this batch registered, and for one
        whose card a crash between the registry insert and the card insert left missing, whichever of the
        customer's messages comes next. The insert is by the registry's contact id, so exactly one card exists
        however many consumers race; only the insert that took place announces it, or a redelivery of the event
        that built the card (`created_by_event_id`). A card another consumer inserted first is read back (rare: a
        partition moving between two replicas), so this batch's messages still reach it."""
        registry = await self._registered([s.key for s in sightings])
        registry.update(await self._register([s for s in sightings if s.key not in registry]))
        missing = [s for s in sightings if registry[s.key].card is None and registry[s.key].by_a_message]
        cards = [first_sighting_card(s, registry[s.key].contact_id) for s in missing]
        inserted = await self._insert_cards(cards)
        beaten = [s.key for s, card in zip(missing, cards, strict=True) if card["_id"] not in inserted]
        if beaten:  # another consumer inserted the card as this batch went: read it, to tell it this batch's news
            registry.update(await self._registered(beaten))
        built_here = [(s, card) for s, card in zip(missing, cards, strict=True) if card["_id"] in inserted]
        outcome = Recorded()
        outcome.created = built_here + [(s, card) for s in sightings if (card := registry[s.key].card) is not None
                                        and card.get("created_by_event_id") in s.event_ids]  # a redelivery
        built = {id(s) for s, _ in built_here}
        outcome.renamed = await self._update_seen([(s, registry[s.key]) for s in sightings if id(s) not in built])
        return outcome

    async def _registered(self, keys: list[CustomerKey]) -> dict[CustomerKey, Registered]:
        """The registry entries of `keys` with their cards: one aggregate per tenant and channel (a `$lookup` by
        `_id`, an index lookup), never a read per customer nor a second one for the cards."""
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for tenant_id, channel_id, external_user_id in keys:
            groups[(tenant_id, channel_id)].append(external_user_id)
        found: dict[CustomerKey, Registered] = {}
        for (tenant_id, channel_id), external_ids in groups.items():
            query = {"tenant_id": tenant_id, "channel_id": channel_id, "external_user_id": {"$in": external_ids}}
            async for doc in await self._c.identities.aggregate([
                    {"$match": query},
                    {"$lookup": {"from": self._c.contacts.name, "localField": "contact_id", "foreignField": "_id",
                                 "as": "cards"}}]):
                cards = [card for card in doc["cards"] if of_tenant(card, tenant_id) is not None]  # see of_tenant
                found[(tenant_id, channel_id, doc["external_user_id"])] = Registered(
                    str(doc["contact_id"]), doc.get("created_by_event_id") is not None, cards[0] if cards else None)
        return found

    async def _register(self, sightings: list[Sighting]) -> dict[CustomerKey, Registered]:
        """Insert one registry entry per new customer, its contact id derived from the customer's first message
        (the router names it on the conversation that message opens). A concurrent consumer (another partition, a
        replica) that registered one first makes ours a duplicate: its entry is read instead."""
        if not sightings:
            return {}
        entries: list[Doc] = [{"tenant_id": s.event.tenant_id, "channel_id": s.event.channel_id,
                    "external_user_id": s.event.external_user_id,
                    "contact_id": contact_id_of_first_message(s.events[0].event_id),
                    "created_by_event_id": str(s.event.event_id), "created_at": s.event.received_at}
                   for s in sightings]
        taken = await _duplicates(self._c.identities.bulk_write([InsertOne(entry) for entry in entries],
                                                                 ordered=False))
        registry = {s.key: Registered(entry["contact_id"], by_a_message=True)
                    for index, (s, entry) in enumerate(zip(sightings, entries, strict=True)) if index not in taken}
        if taken:
            raced = [sightings[index].key for index in taken]
            winners = await self._registered(raced)
            if len(winners) < len(raced):  # the winner's registration was undone since (an HTTP create's rollback)
                raise RegistrationRaced("an identity's registration was undone while this batch registered it")
            registry.update(winners)
        return registry

    async def _insert_cards(self, cards: list[Card]) -> set[str]:
        """Insert, not upsert (far cheaper here); returns the ids inserted. A card already there is a duplicate,
        left as it is: another consumer inserted it first, or this batch's earlier delivery did."""
        if not cards:
            return set()
        taken = await _duplicates(self._c.contacts.bulk_write([InsertOne(card) for card in cards], ordered=False))
        return {card["_id"] for index, card in enumerate(cards) if index not in taken}

    async def _update_seen(self, seen: list[tuple[Sighting, Registered]]) -> list[tuple[Sighting, str, dict[str, Any]]]:
        """Last seen of every customer whose card this batch did not build, and what the channel tells anew
        (`refreshed`, guarded on the `platform_name_at` read with the card): one bulk write."""
        if not seen:
            return []
        operations: list[UpdateOne] = []
        renamed: list[tuple[Sighting, str, dict[str, Any]]] = []
        for sighting, registered in seen:
            contact_id, card = registered.contact_id, registered.card
            operations.append(_seen_update(sighting, contact_id))
            if card is None:
                continue  # an agent's create registered the customer and inserts the card itself
            changes = refreshed(card, sighting.events)
            if changes is not None:
                operations.append(UpdateOne(
                    {"_id": contact_id, "tenant_id": sighting.event.tenant_id,
                     "platform_name_at": card.get("platform_name_at")},
                    {"$set": changes, "$inc": {"version": 1}}, hint=BY_ID,
                ))
                if "platform_name" in changes:
                    renamed.append((sighting, contact_id, changes))
            elif (card.get("platform_name_event_id") in sighting.event_ids
                  and card.get("created_by_event_id") not in sighting.event_ids):  # a redelivery of a rename
                renamed.append((sighting, contact_id, {name: card[name] for name in RENAME}))
        await self._c.contacts.bulk_write(operations, ordered=True)
        return renamed


def _seen_update(sighting: Sighting, contact_id: str) -> UpdateOne:
    event = sighting.event
    latest: dict[str, Any] = {"last_activity_at": event.provider_timestamp,
                              "activity_key": activity_key(event.provider_timestamp, contact_id)}
    if sighting.last_seen_at is not None:
        latest["last_seen_at"] = sighting.last_seen_at
    return UpdateOne({"_id": contact_id, "tenant_id": event.tenant_id}, {"$max": latest}, hint=BY_ID)


async def _duplicates(write: Any) -> set[int]:
    """The indexes of an unordered bulk insert's documents that were duplicates; any other error is raised."""
    try:
        await write
    except BulkWriteError as exc:
        _raise_unless_duplicates(exc)
        return {error["index"] for error in exc.details.get("writeErrors", [])}
    return set()


def _raise_unless_duplicates(exc: BulkWriteError) -> None:
    others = [error for error in exc.details.get("writeErrors", []) if error.get("code") != DUPLICATE_KEY]
    if others or exc.details.get("writeConcernErrors"):
        raise exc
