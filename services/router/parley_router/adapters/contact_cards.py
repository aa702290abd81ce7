"""The writes of the router's projection of contacts' cards: a consumer batch of contacts' events as one ordered
bulk write, each event applied once (by its event id), by update operators only — but the new cards, inserted
before it (`first_creations`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pymongo import DeleteOne, UpdateOne

from parley_common.ids import ConversationKey
from parley_common.mongo import DUPLICATE_KEY

Doc = dict[str, Any]
APPLIED = "applied_events"  # the card's latest event ids: an event whose id is there is not applied again
# A redelivered batch holds at most a batch's events (256) over many contacts: one contact's last 32 cover it.
APPLIED_KEPT = 32


@dataclass(frozen=True)
class CardChange:
    """What one contacts event changes on a projected card. `merged_contact_id`: that card was folded into this
    one (its custom fields join where this one has none of that name; its identities leave it)."""

    event_id: str
    tenant_id: str
    contact_id: str
    fields: Doc = field(default_factory=dict)
    identities: tuple[str, ...] = ()
    custom_set: Doc = field(default_factory=dict)
    custom_drop: tuple[str, ...] = ()
    merged_contact_id: str | None = None
    creates: bool = False  # the contact's creation: its card most likely does not exist yet

    @property
    def merged_card_id(self) -> str | None:
        return card_id(self.tenant_id, self.merged_contact_id) if self.merged_contact_id else None

    @property
    def cards_touched(self) -> tuple[str, ...]:
        return (self.card_id,) if self.merged_card_id is None else (self.card_id, self.merged_card_id)

    @property
    def card_id(self) -> str:
        return card_id(self.tenant_id, self.contact_id)


def card_id(tenant_id: str, contact_id: str) -> str:
    return f"{tenant_id}|{contact_id}"


def merged_card_ids(changes: Iterable[CardChange]) -> list[str]:
    return [merged for change in changes if (merged := change.merged_card_id) is not None]


@dataclass(frozen=True)
class CardWrite:
    """One statement of a batch's ordered card writes. `upsert`: the card's first change in the batch, which
    creates the card when it is new."""

    filter: Doc
    update: Doc
    upsert: bool = False

    def operation(self) -> UpdateOne:
        return UpdateOne(self.filter, self.update, upsert=self.upsert)


def card_writes(changes: Sequence[CardChange], merged_fields: Mapping[str, Doc]) -> list[CardWrite]:
    """The ordered writes of `changes` (one card's in their order): every change guarded by its event id, which
    it records in the same write — a batch delivered again, even after another consumer applied later events of
    the same cards (a rebalance), changes nothing. A card's first change is an upsert, so a new card is created
    with it: one document written per event. (Where the card is there with that event already, that upsert fails
    on the duplicate key: `resumed_after`.) `merged_fields`: the custom fields of the folded cards, by card id."""
    writes: list[CardWrite] = []
    written: set[str] = set()  # cards with a write before this change's
    for change in changes:
        guard, update = guarded_update(change)
        merged = change.merged_card_id
        folded = merged_fields.get(merged, {}) if merged else {}
        if folded and change.card_id not in written:  # the folded fields are set only where the card has none
            writes.append(creation(change.card_id, change.tenant_id))
        # the card kept wins a field both have (as contacts folds them): set only where it has none
        writes += [CardWrite({**guard, f"custom_fields.{name}": {"$exists": False}},
                             {"$set": {f"custom_fields.{name}": value}}) for name, value in folded.items()]
        writes.append(CardWrite(guard, update, upsert=change.card_id not in written))
        written.add(change.card_id)
        if merged:  # an identity leads to the surviving card only (nothing when the folded card is unknown)
            writes.append(CardWrite({"_id": merged}, {"$set": {"merged_into": change.contact_id},
                                                      "$pullAll": {"identities": list(change.identities)}}))
    return writes


def new_card(change: CardChange) -> Doc | None:
    """The card `change`'s guarded upsert makes where there is none, when the change is a contact's creation
    (nothing folded into it, no custom field): inserted instead — on the local database an upsert costs several
    inserts. None for any other change."""
    if not change.creates or change.merged_contact_id or change.custom_set or change.custom_drop:
        return None
    card: Doc = {"_id": change.card_id, **change.fields, "tenant_id": change.tenant_id, APPLIED: [change.event_id]}
    if change.identities:
        card["identities"] = list(dict.fromkeys(change.identities))
    return card


def first_creations(changes: Sequence[CardChange]) -> dict[int, Doc]:
    """The new cards of the changes that are their card's first write in `changes` (by the change's place): each
    may be inserted before the batch's ordered writes, which no other change's write reaches before it."""
    found: dict[int, Doc] = {}
    touched: set[str] = set()
    for index, change in enumerate(changes):
        if change.card_id not in touched and (card := new_card(change)) is not None:
            found[index] = card
        touched.update(change.cards_touched)
    return found


def creation(card: str, tenant_id: str) -> CardWrite:
    return CardWrite({"_id": card}, {"$setOnInsert": {"tenant_id": tenant_id}}, upsert=True)


def resumed_after(writes: Sequence[CardWrite], failed: Mapping[str, Any]) -> list[CardWrite] | None:
    """What is left to write of ordered `writes` stopped by the write error `failed`. When a card's first change
    met the card there already with that event (a batch delivered again), the rest is written as a redelivery
    is: each card left created when new, then every change as a plain guarded update (a no-op where the card had
    that event) — one more round trip, not one per card. None: any other error, which is raised."""
    index = failed["index"]
    if failed.get("code") != DUPLICATE_KEY or not _creates_with_change(writes[index]):
        return None
    rest = writes[index:]
    return [*(creation(write.filter["_id"], write.update["$set"]["tenant_id"])
              for write in rest if _creates_with_change(write)),
            *(replace(write, upsert=False) if _creates_with_change(write) else write for write in rest)]


def _creates_with_change(write: CardWrite) -> bool:
    return write.upsert and APPLIED in write.filter


def guarded_update(change: CardChange) -> tuple[Doc, Doc]:
    """The filter that matches the card only while it has not had this event, and the update that applies it
    and records its id."""
    update: Doc = {"$set": {**change.fields, "tenant_id": change.tenant_id,
                            **{f"custom_fields.{name}": value for name, value in change.custom_set.items()}},
                   "$push": {APPLIED: {"$each": [change.event_id], "$slice": -APPLIED_KEPT}}}
    if change.identities:
        update["$addToSet"] = {"identities": {"$each": list(change.identities)}}
    if change.custom_drop:
        update["$unset"] = {f"custom_fields.{name}": "" for name in change.custom_drop}
    return {"_id": change.card_id, APPLIED: {"$ne": change.event_id}}, update


def blocked_writes(blocked: Mapping[ConversationKey, bool]) -> list[UpdateOne | DeleteOne]:
    """Each identity's state as its latest event of a batch says (a redelivery ends in the same state)."""
    return [UpdateOne({"_id": str(key)}, {"$set": {"tenant_id": key.tenant_id}}, upsert=True) if is_blocked
            else DeleteOne({"_id": str(key)}) for key, is_blocked in blocked.items()]
