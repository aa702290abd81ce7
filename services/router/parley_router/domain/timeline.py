"""Timeline entries: messages in and out, notes and activity, ordered by the provider's time.

The order key is (time, messages before activity, entry id): an event that arrives late still lands in its
place, and two entries with the same time always sort the same way."""

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

    def order_key(self) -> tuple[datetime, int, str]:
        return (self.at, tiebreak_rank(self.kind), self.id)


def tiebreak_rank(kind: EntryKind) -> int:
    """At the same instant a message comes before the notes and activity it caused."""
    return 0 if kind in (EntryKind.INBOUND, EntryKind.OUTBOUND) else 1


def ordered(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=Entry.order_key)


def inbound_entry_id(provider_message_id: str) -> str:
    return f"in:{provider_message_id}"


def outbound_entry_id(message_id: str) -> str:
    return f"out:{message_id}"
