"""The conversation state machine: statuses, flags and the transitions agents, bots and messages cause.

Pure: every transition takes `now` and returns a new `Conversation`; an invalid one raises `TransitionError`
with a machine-readable code (the HTTP layer turns it into 409/422)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    SNOOZED = "snoozed"
    CLOSED = "closed"


class AssigneeKind(StrEnum):
    AGENT = "agent"
    TEAM = "team"
    SKILL = "skill"
    BOT = "bot"


@dataclass(frozen=True)
class Assignee:
    kind: AssigneeKind
    id: str


class TransitionError(Exception):
    """An action that the conversation's current state does not allow (HTTP 409) or bad input (422)."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


MIN_PRIORITY, MAX_PRIORITY = 0, 3  # 0 normal … 3 urgent
# How long a bot may leave a customer's message unanswered before its fallback team takes over, unless the routing
# rule or the channel that gave it the conversation says otherwise (domain/bots.py).
DEFAULT_BOT_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Conversation:
    id: str
    tenant_id: str
    channel_id: str
    channel_type: str
    external_user_id: str
    status: Status
    opened_at: datetime
    last_activity_at: datetime
    assignee: Assignee | None = None
    team_id: str | None = None
    archived: bool = False
    unanswered: bool = False
    priority: int = 0
    waiting_since: datetime | None = None
    first_response_at: datetime | None = None
    snoozed_until: datetime | None = None
    offer_expires_at: datetime | None = None
    closed_at: datetime | None = None
    closing_note: str | None = None
    blocked: bool = False
    labels: tuple[str, ...] = field(default_factory=tuple)
    customer_name: str | None = None  # as the channel last described the customer (for search)
    customer_phone: str | None = None
    sticky_agent: str | None = None  # who served this customer last; preferred by sticky rules
    # the message that opened it: a customer's provider message id, or a business-first message's entry (`out:<id>`);
    # its redelivery announces the conversation's `opened` again
    opened_by: str | None = None
    declined_by: tuple[str, ...] = ()  # agents who declined its offer: not offered it again while it waits
    first_assigned_at: datetime | None = None  # when an agent first had it for good (wait time; not an offer)
    contact_id: str | None = None  # the card in contacts: a new customer's named at opening, else from its events
    contact_fields: tuple[tuple[str, str], ...] = ()  # the card's custom fields while open (rule-comparable)
    answered_broadcast_id: str | None = None  # the customer opened it answering this broadcast (outbound's events)
    # the reply (its timeline entry) that last answered the customer: its status delivered again answers nothing twice
    answered_by_reply: str | None = None
    # the after-send action (its event id) that last changed it: delivered again, it changes nothing twice
    applied_command_id: str | None = None
    bot_timeout_seconds: int | None = None  # a bot's: how long it may leave the customer waiting (domain/bots.py)
    bot_reply_due: datetime | None = None  # a bot's with a customer message unanswered: its team takes over then
    version: int = 0  # optimistic concurrency: the store refuses a save over a newer version

    @property
    def is_open(self) -> bool:
        return self.status is not Status.CLOSED

    @property
    def agent(self) -> str | None:
        return self.assignee.id if self.assignee and self.assignee.kind is AssigneeKind.AGENT else None

    @property
    def first_response_seconds(self) -> float | None:
        if self.first_response_at is None:
            return None
        return (self.first_response_at - self.opened_at).total_seconds()


def open_conversation(conversation_id: str, tenant_id: str, channel_id: str, channel_type: str,
                      external_user_id: str, now: datetime, *, blocked: bool = False) -> Conversation:
    """A new conversation starts queued and waiting; routing then moves it to a bot, team or agent."""
    return Conversation(
        id=conversation_id, tenant_id=tenant_id, channel_id=channel_id, channel_type=channel_type,
        external_user_id=external_user_id, status=Status.QUEUED, opened_at=now, last_activity_at=now,
        unanswered=True, waiting_since=now, blocked=blocked,
    )


def customer_wrote(conv: Conversation, now: datetime) -> Conversation:
    """A customer message on an open conversation: unanswered again, un-archived, snooze ends."""
    if not conv.is_open:
        raise TransitionError("conversation_closed", "a closed conversation takes no messages; open a new one")
    status = conv.status
    if status is Status.SNOOZED:
        status = Status.ASSIGNED if conv.assignee and conv.assignee.kind is not AssigneeKind.BOT else Status.QUEUED
    waiting = conv.waiting_since or now
    due = (conv.bot_reply_due or _bot_deadline(conv, now)) if status is Status.BOT else None
    return replace(conv, status=status, archived=False, unanswered=True, waiting_since=waiting,
                   snoozed_until=None, bot_reply_due=due, last_activity_at=max(conv.last_activity_at, now))


def _bot_deadline(conv: Conversation, now: datetime) -> datetime:
    return now + timedelta(seconds=conv.bot_timeout_seconds or DEFAULT_BOT_TIMEOUT_SECONDS)


def agent_replied(conv: Conversation, login: str, now: datetime, reply: str | None = None) -> Conversation:
    """A human reply: answered, no longer waiting; first response recorded once; an unassigned conversation
    becomes the replying agent's (and an offer is accepted by replying). `reply`: its entry, which answers once
    (the customer may have written again before its status comes a second time)."""
    if reply is not None and conv.answered_by_reply == reply:
        return conv
    first = conv.first_response_at or now
    conv = replace(conv, unanswered=False, waiting_since=None, first_response_at=first, archived=False,
                   bot_reply_due=None, last_activity_at=max(conv.last_activity_at, now), answered_by_reply=reply)
    if conv.status in (Status.QUEUED, Status.BOT) or (conv.status is Status.ASSIGNED and conv.agent is None):
        conv = replace(conv, status=Status.ASSIGNED, assignee=Assignee(AssigneeKind.AGENT, login))
    if conv.agent == login:
        conv = replace(conv, offer_expires_at=None, declined_by=())
    return conv


def accept_offer(conv: Conversation, login: str, now: datetime) -> Conversation:
    """The offered agent accepts: the conversation is theirs, and the offer no longer times out."""
    _require_pending_offer(conv, login)
    return replace(conv, offer_expires_at=None, declined_by=(), last_activity_at=max(conv.last_activity_at, now))


def decline_offer(conv: Conversation, login: str, now: datetime) -> Conversation:
    """The offered agent declines: back in the queue, never offered to them again while it waits there."""
    _require_pending_offer(conv, login)
    return replace(return_to_queue(conv, now), declined_by=tuple(sorted({*conv.declined_by, login})))


def _require_pending_offer(conv: Conversation, login: str) -> None:
    _require_open(conv)
    if conv.status is not Status.ASSIGNED or conv.agent != login or conv.offer_expires_at is None:
        raise TransitionError("no_pending_offer", f"no pending offer of this conversation to {login}")


def bot_replied(conv: Conversation, now: datetime, reply: str | None = None) -> Conversation:
    """A bot's message left. On a conversation a bot holds: answered, nobody waiting, and the bot's deadline waits
    for the customer's next message (a hand-over then queues the customer from their last unanswered message).
    On one a bot handed over (its goodbye arriving after the hand-over) or a human's: the customer still waits.
    `reply` answers once, as in `agent_replied`."""
    if reply is not None and conv.answered_by_reply == reply:
        return conv
    if conv.status is not Status.BOT:
        return replace(conv, last_activity_at=max(conv.last_activity_at, now))
    return replace(conv, unanswered=False, waiting_since=None, bot_reply_due=None,
                   last_activity_at=max(conv.last_activity_at, now), answered_by_reply=reply)


def assign(conv: Conversation, target: Assignee, now: datetime, *, offer_expires_at: datetime | None = None,
           team_id: str | None = None) -> Conversation:
    """Assign to an agent, team, skill or bot. A bot target puts the conversation in `bot` status; while the
    customer waits for an answer the bot has `bot_timeout_seconds` to give one (then its team takes over)."""
    _require_open(conv)
    if conv.blocked:
        raise TransitionError("customer_blocked", "the customer is blocked on this channel")
    if conv.assignee == target and conv.status in (Status.ASSIGNED, Status.BOT):
        raise TransitionError("already_assigned", f"already assigned to {target.kind} {target.id}")
    if target.kind in (AssigneeKind.TEAM, AssigneeKind.SKILL):
        return enqueue(conv, target, now)  # waits in the team's / skill's queue until an agent takes it
    to_bot = target.kind is AssigneeKind.BOT
    status = Status.BOT if to_bot else Status.ASSIGNED
    declined = conv.declined_by if offer_expires_at is not None else ()  # an offer keeps who declined before
    due = _bot_deadline(conv, now) if to_bot and conv.unanswered else None
    return replace(conv, status=status, assignee=target, offer_expires_at=offer_expires_at, declined_by=declined,
                   team_id=team_id if team_id is not None else conv.team_id, bot_reply_due=due,
                   snoozed_until=None, last_activity_at=max(conv.last_activity_at, now))


def enqueue(conv: Conversation, target: Assignee, now: datetime) -> Conversation:
    """Queue for a team, a skill or one agent (a routing rule naming an agent who is not free yet)."""
    _require_open(conv)
    team_id = target.id if target.kind is AssigneeKind.TEAM else conv.team_id
    return replace(conv, status=Status.QUEUED, assignee=target, team_id=team_id, offer_expires_at=None,
                   snoozed_until=None, bot_reply_due=None, waiting_since=conv.waiting_since or now)


def queue_target(conv: Conversation) -> Assignee | None:
    """What a queued conversation waits for; None when it is not in the queue."""
    if conv.status is not Status.QUEUED or conv.blocked:
        return None
    return conv.assignee or (Assignee(AssigneeKind.TEAM, conv.team_id) if conv.team_id else None)


def return_to_queue(conv: Conversation, now: datetime) -> Conversation:
    """An offer expired or an agent went away: back in the queue, keeping its team and waiting time."""
    _require_open(conv)
    team = Assignee(AssigneeKind.TEAM, conv.team_id) if conv.team_id else None
    return replace(conv, status=Status.QUEUED, assignee=team, offer_expires_at=None, bot_reply_due=None,
                   waiting_since=conv.waiting_since or now)


def offer_expired(conv: Conversation, now: datetime) -> bool:
    return (conv.status is Status.ASSIGNED and conv.offer_expires_at is not None
            and conv.offer_expires_at <= now)


def close(conv: Conversation, now: datetime, note: str | None = None) -> Conversation:
    if conv.status is Status.CLOSED:
        raise TransitionError("already_closed", "the conversation is already closed")
    return replace(conv, status=Status.CLOSED, closed_at=now, closing_note=note, offer_expires_at=None,
                   declined_by=(), snoozed_until=None, waiting_since=None, bot_reply_due=None,
                   last_activity_at=max(conv.last_activity_at, now))


def reopen(conv: Conversation, now: datetime) -> Conversation:
    """Back to the queue (KAON: a reopened thread waits for an agent again)."""
    if conv.status is not Status.CLOSED:
        raise TransitionError("not_closed", "only a closed conversation can be reopened")
    return replace(conv, status=Status.QUEUED, closed_at=None, closing_note=None, archived=False,
                   assignee=Assignee(AssigneeKind.TEAM, conv.team_id) if conv.team_id else None,
                   waiting_since=now, unanswered=True, last_activity_at=now)


def snooze(conv: Conversation, until: datetime, now: datetime) -> Conversation:
    _require_open(conv)
    if until <= now:
        raise TransitionError("snooze_in_past", "snooze needs a time in the future", status=422)
    return replace(conv, status=Status.SNOOZED, snoozed_until=until, offer_expires_at=None, bot_reply_due=None)


def wake(conv: Conversation, now: datetime) -> Conversation:
    """A snooze that ran out: back to its agent, or to the queue."""
    if conv.status is not Status.SNOOZED or conv.snoozed_until is None or conv.snoozed_until > now:
        return conv
    status = Status.ASSIGNED if conv.agent else Status.QUEUED
    return replace(conv, status=status, snoozed_until=None, waiting_since=conv.waiting_since or now)


def archive(conv: Conversation, now: datetime) -> Conversation:
    if conv.archived:
        raise TransitionError("already_archived", "the conversation is already archived")
    return replace(conv, archived=True)


def mark(conv: Conversation, unanswered: bool, now: datetime) -> Conversation:
    return replace(conv, unanswered=unanswered, waiting_since=(conv.waiting_since or now) if unanswered else None)


def set_priority(conv: Conversation, priority: int) -> Conversation:
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise TransitionError("invalid_priority", f"priority must be {MIN_PRIORITY}..{MAX_PRIORITY}", status=422)
    return replace(conv, priority=priority)


def set_status(conv: Conversation, status: Status, now: datetime, actor: str) -> Conversation:
    """An agent changing status by hand; changing a bot conversation takes it from the bot."""
    if status is Status.CLOSED:
        return close(conv, now)
    if status is Status.SNOOZED:
        raise TransitionError("snooze_needs_time", "use the snooze action with a time", status=422)
    _require_open(conv)
    if status is conv.status:
        raise TransitionError("same_status", f"the conversation is already {status}")
    if status is Status.ASSIGNED:
        return assign(conv, Assignee(AssigneeKind.AGENT, actor), now)
    if status is Status.BOT:
        raise TransitionError("bot_needs_target", "assign to a bot to hand it to a bot", status=422)
    return return_to_queue(replace(conv, team_id=conv.team_id), now)


def stamp_first_assignment(conv: Conversation, now: datetime) -> Conversation:
    """The first time an agent holds it for good (accepted, assigned, replied; not a pending offer)."""
    if conv.first_assigned_at is None and conv.status is Status.ASSIGNED and conv.agent \
            and conv.offer_expires_at is None:
        return replace(conv, first_assigned_at=now)
    return conv


@dataclass(frozen=True)
class ContactSummary:
    """What an open conversation shows of the customer's card (the router's projection of contacts' events)."""
    contact_id: str
    name: str | None = None
    phone: str | None = None
    labels: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()


def with_contact(conv: Conversation, contact: ContactSummary) -> Conversation:
    """The card's current name, phone, labels and fields on the conversation (the channel's profile name and
    phone stay when the card has none)."""
    return replace(conv, contact_id=contact.contact_id, labels=contact.labels, contact_fields=contact.fields,
                   customer_name=contact.name or conv.customer_name,
                   customer_phone=contact.phone or conv.customer_phone)


def set_blocked(conv: Conversation, blocked: bool, now: datetime) -> Conversation:
    """A block takes effect at once: the conversation leaves the queue and an offer not accepted yet is withdrawn
    (an agent who accepted it keeps it, to close it); an unblocked one that waits is routed again."""
    _require_open(conv)
    if blocked and conv.status is Status.ASSIGNED and conv.offer_expires_at is not None:
        conv = return_to_queue(conv, now)
    return replace(conv, blocked=blocked)


def _require_open(conv: Conversation) -> None:
    if conv.status is Status.CLOSED:
        raise TransitionError("conversation_closed", "the conversation is closed; reopen it first")
