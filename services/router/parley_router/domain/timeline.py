"""Timeline entries: messages in and out, notes and activity, ordered by the provider's time.

The order key is (time, messages before activity, arrival, entry id): an event that arrives late still lands in
its place, and two entries with the same time always sort the same way. Arrival is when ingest received an
inbound message: providers give whole seconds (WhatsApp), so two messages a customer sent within one second keep
the order they came in, not the order of their ids. Entries without it (ours, activity, and inbound ones stored
before it was kept) sort before those with it, as the database sorts a missing field first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EntryKind(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"
    ACTIVITY = "activity"


@dataclass(frozen=True)
class Entry:
    id: str  # stable: provider message id, Parley message id, or event id — replays overwrite, never add
    kind: EntryKind
    at: datetime
    received_at: datetime | None = None  # inbound: when ingest received it

    def order_key(self) -> tuple[datetime, int, bool, datetime, str]:
        return (self.at, tiebreak_rank(self.kind), self.received_at is not None, self.received_at or self.at, self.id)


# the stored entry's fields in the order above (the repository's sort and index)
ORDER_FIELDS = ("at", "rank", "received_at", "entry_id")


def tiebreak_rank(kind: EntryKind) -> int:
    """At the same instant a message comes before the notes and activity it caused."""
    return 0 if kind in (EntryKind.INBOUND, EntryKind.OUTBOUND) else 1


def ordered(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=Entry.order_key)


def inbound_entry_id(provider_message_id: str) -> str:
    return f"in:{provider_message_id}"


def outbound_entry_id(message_id: str) -> str:
    return f"out:{message_id}"
