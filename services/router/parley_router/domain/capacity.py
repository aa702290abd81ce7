"""Capacity reconciliation: how the Redis slot sets must change to agree with the stored conversations.

MongoDB is the truth: a conversation holds a slot of its agent on its channel type while it is `assigned` or
`snoozed` with that agent. The slot sets in Redis can drift (a lost optimistic-version race between three or
more replicas can leave a slot behind, or give one back that the winner still holds). This module only decides;
the adapter applies the decision atomically, skipping slots taken within the grace period (in-flight saves)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

SlotKey = tuple[str, str]  # (agent login, channel type)


@dataclass(frozen=True)
class SlotRepair:
    """One agent's slot set on one channel type: members to remove (their conversation is not held by the agent
    any more: a leak) and conversations to put back (held but missing: an undercount)."""

    login: str
    channel_type: str
    stale: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def repairs(slots: Mapping[SlotKey, Set[str]], held: Mapping[SlotKey, Set[str]]) -> list[SlotRepair]:
    """Compare the slot sets (read first) with the held conversations (read after them).

    Reading Redis before MongoDB makes both directions safe against changes between the reads: a slot taken and
    saved in between shows up as `missing` and re-adding it is a no-op; a conversation moved away in between is
    not held any more, so it is not re-added. One moved away after the MongoDB read still looks held: the adapter
    does not put back a conversation released since the reads began. Every set is returned, also those needing
    nothing, so that the adapter can prune the take stamps of slots released meanwhile."""
    out = []
    for login, channel_type in sorted(set(slots) | set(held)):
        members = slots.get((login, channel_type), frozenset())
        holding = held.get((login, channel_type), frozenset())
        out.append(SlotRepair(login, channel_type, tuple(sorted(members - holding)),
                              tuple(sorted(holding - members))))
    return out


def over_capacity(count: int, capacity: int) -> int:
    """By how many conversations an agent holds more than their capacity (0 when within it).

    Re-adding a missing slot may push a set above capacity — when, during an undercount, the agent was given
    one conversation too many. The set is then right to count them all: it only blocks further offers until
    the agent is back under capacity; leaving the slot out would let the router hand out yet another one."""
    return max(0, count - capacity)


def by_slot(holders: Mapping[str, SlotKey]) -> dict[SlotKey, set[str]]:
    """Held conversations (conversation id → the slot it holds) grouped per slot set, as `repairs` takes them."""
    held: dict[SlotKey, set[str]] = {}
    for conversation_id, slot in holders.items():
        held.setdefault(slot, set()).add(conversation_id)
    return held


def apply_changes(holders: dict[str, SlotKey], changed: Mapping[str, SlotKey | None]) -> None:
    """Bring a view of the held conversations up to date with conversations read again (None: holds no slot, or
    no longer stored)."""
    for conversation_id, slot in changed.items():
        if slot is None:
            holders.pop(conversation_id, None)
        else:
            holders[conversation_id] = slot


def doubted(planned: list[SlotRepair]) -> set[str]:
    """The conversations a plan would remove from or put back into a slot set."""
    return {conversation_id for repair in planned for conversation_id in (*repair.stale, *repair.missing)}


# A round between full reads reads what changed in windows of the writers' time, each about this many conversations
# if the round finds as many as the round before did (adapters/capacity_audit.py says why), at most this many windows.
CHANGES_PER_WINDOW = 500
MAX_CHANGE_WINDOWS = 60


def change_windows(read_last_round: int) -> int:
    """How many windows a round between full reads reads in, from how many conversations the tenant's last round
    read: one for a quiet tenant (one query, as an idle deployment should cost), more as its changes grow."""
    return max(1, min(MAX_CHANGE_WINDOWS, -(-read_last_round // CHANGES_PER_WINDOW)))
