"""What router publishes about conversations, and commands other services send to it."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from parley_common.events.envelope import ConversationScoped, Envelope, Frozen


class Assignee(Frozen):
    kind: Literal["agent", "team", "skill", "bot", "queue"]
    id: str


class ConversationChanged(ConversationScoped):
    """A conversation was opened, assigned, transferred, snoozed, closed, reopened… (`change` says which).

    Carries the state after the change so consumers can keep a projection from this event alone."""

    source = "parley/router"
    type: Literal["parley.conversation.changed"] = "parley.conversation.changed"
    schema_version: Literal[1] = 1
    conversation_id: str
    change: str = Field(description="opened, message_appended, assigned, offered, offer_accepted (the offered "
                                    "agent keeps it; the offer no longer times out), offer_declined (back in the "
                                    "queue, previous_assignee = who declined; offered to someone else), "
                                    "offer_expired, transferred, status_changed, closed (comment = closing note), "
                                    "reopened, note_added, message_status (an outbound message's delivery status "
                                    "moved on), contact_changed (the customer's card), blocked, unblocked, "
                                    "media_changed (an attachment of the message entry_id), message_revised (the "
                                    "customer edited, deleted or reacted to the message entry_id; comment = edit, "
                                    "delete or reaction), …")
    status: Literal["bot", "queued", "assigned", "snoozed", "closed"]
    assignee: Assignee | None = None
    actor: str | None = Field(default=None, description="login, bot id or 'system'")
    comment: str | None = None
    changed_at: AwareDatetime
    # Added (optional, backward compatible): the rest of the state, so a projection needs no other source.
    previous_assignee: Assignee | None = None
    team_id: str | None = None
    priority: int | None = None
    archived: bool | None = None
    unanswered: bool | None = None
    channel_type: str | None = None
    offer_expires_at: AwareDatetime | None = None
    snoozed_until: AwareDatetime | None = None
    entry_id: str | None = Field(default=None,
                                 description="timeline entry, for message_appended / note_added / message_status")
    contact_id: str | None = Field(default=None, description=(
        "the customer's card in contacts: a new customer's from the conversation's opening (the card contacts creates "
        "from the same first message, which may be stored a moment after this event), a known customer's once the "
        "router has read it; a later card (a merge, an agent's card) comes as contact_changed"))


CONVERSATION_CHANGES = (
    "opened", "message_appended", "assigned", "offered", "offer_accepted", "offer_declined", "offer_expired",
    "transferred", "status_changed",
    "closed", "reopened", "note_added", "archived", "marked", "priority_changed", "snoozed", "message_status",
    "contact_changed", "blocked", "unblocked", "media_changed",
)


class ConversationActionRequested(ConversationScoped):
    """Command to router: e.g. outbound's after-send option (close, assign to me, transfer)."""

    source = "parley/outbound"
    type: Literal["parley.conversation.action_requested"] = "parley.conversation.action_requested"
    schema_version: Literal[1] = 1
    action: Literal["close", "assign_to_me", "transfer"]
    actor: str
    target: Assignee | None = None
    comment: str | None = None
    related_message_id: str | None = None


class AgentChanged(Envelope):
    """An agent was created or changed in the router's directory: the teams they belong to now.

    Services that apply the visibility rule (parley_common.visibility) keep each agent's teams from these."""

    source = "parley/router"
    type: Literal["parley.agent.changed"] = "parley.agent.changed"
    schema_version: Literal[1] = 1
    login: str = Field(min_length=1, description="the agent's login (the `sub` of their token)")
    teams: tuple[str, ...] = ()

    def partition_key(self) -> bytes:
        return f"{self.tenant_id}|{self.login}".encode()
