"""The outbound message status: a monotonic state machine fed by provider callbacks that arrive late,
twice, or out of order. `read` implies `delivered`; nothing moves a message back; failed and refused are final.

`sending` is internal only: recorded just before the provider call, so a crash between the call and its
result is visible on restart and the message is never sent twice.
"""

from __future__ import annotations

from enum import StrEnum

from parley_common.events.inbound import DeliveryStatus


class State(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    REFUSED = "refused"


_RANK = {State.QUEUED: 0, State.SENDING: 1, State.SENT: 2, State.DELIVERED: 3, State.READ: 4}
FINAL = frozenset({State.FAILED, State.REFUSED})

_FROM_PROVIDER = {
    DeliveryStatus.SENT: State.SENT,
    DeliveryStatus.DELIVERED: State.DELIVERED,
    DeliveryStatus.READ: State.READ,
    DeliveryStatus.PLAYED: State.READ,
    DeliveryStatus.FAILED: State.FAILED,
}


def from_provider(status: DeliveryStatus) -> State | None:
    """The state a provider status means; None for statuses that do not change ours (deleted)."""
    return _FROM_PROVIDER.get(status)


def advance(current: State, reported: State) -> State | None:
    """The new state, or None when `reported` changes nothing (duplicate, older, or after a final state).

    A failure after `delivered`/`read` is ignored: the customer has the message."""
    if current in FINAL:
        return None
    if reported in FINAL:
        return reported if _RANK[current] <= _RANK[State.SENT] else None
    return reported if _RANK[reported] > _RANK[current] else None
