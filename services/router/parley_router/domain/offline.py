"""What happens to an agent's conversations when the agent goes offline (explicitly or by heartbeat expiry), or
away (finishing: no new offers, the accepted conversations stay to be finished; `requeue_assigned` is False).

An offer not yet accepted returns to the queue at once (no need to wait for the offer timeout: nobody will
accept it). An accepted conversation stays with the agent, unless the team asks for it back
(`requeue_on_offline`). Snoozed conversations stay: they wake up to their agent and are handled then."""

from __future__ import annotations

from enum import StrEnum

from parley_router.domain.conversation import Conversation, Status

OFFLINE_COMMENT = "returned to queue: agent offline"
AWAY_COMMENT = "returned to queue: agent away"


class OfflineMove(StrEnum):
    WITHDRAW_OFFER = "offer_expired"  # the event `change`: the offer ended unaccepted, back in the queue
    RETURN_TO_TEAM = "transferred"  # ownership moved from the agent back to the team's queue


def is_pending_offer(conv: Conversation) -> bool:
    return conv.status is Status.ASSIGNED and conv.offer_expires_at is not None


def offline_move(conv: Conversation, login: str, requeue_assigned: bool) -> OfflineMove | None:
    """The move for one conversation of `login`, who just went offline; None when it stays with them.
    `requeue_assigned` is the setting of the conversation's team (a conversation without a team stays: it has
    no queue to return to)."""
    if conv.agent != login or conv.status is not Status.ASSIGNED or conv.blocked:
        return None
    if is_pending_offer(conv):
        return OfflineMove.WITHDRAW_OFFER
    if requeue_assigned and conv.team_id:
        return OfflineMove.RETURN_TO_TEAM
    return None
