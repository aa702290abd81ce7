"""Whose thread is it? A human may not write into an active thread another agent holds (edna); email is the
exception (it goes out "closed" and opens no thread), and bots or the system are not blocked by it."""

from __future__ import annotations

from dataclasses import dataclass

from parley_common.events.common import ChannelType, SenderKind
from parley_outbound.domain.email_thread import EmailThread

ACTIVE_STATUSES = frozenset({"assigned", "snoozed"})


@dataclass(frozen=True, slots=True)
class ThreadFacts:
    status: str | None = None  # the router's conversation status: bot, queued, assigned, snoozed, closed
    assignee_kind: str | None = None
    assignee_id: str | None = None
    email: EmailThread | None = None  # the customer's last email, which a reply threads under


def held_by_another_agent(channel_type: ChannelType, sender_kind: SenderKind, sender_login: str | None,
                          thread: ThreadFacts) -> bool:
    if channel_type is ChannelType.EMAIL or sender_kind is not SenderKind.HUMAN:
        return False
    return (thread.status in ACTIVE_STATUSES and thread.assignee_kind == "agent"
            and thread.assignee_id is not None and thread.assignee_id != sender_login)
