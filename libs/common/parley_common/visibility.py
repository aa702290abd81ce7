"""Who may see and touch what: the one visibility rule every service applies (router, contacts, outbound, media).

Owners, managers and `integration` (a system acting for the whole tenant) see the whole tenant. An agent sees the
conversations of their teams and their own — and, through them, the customers behind them: the contact card, the
window, outbound messages and media of a conversation key follow that key's conversation. A key with no
conversation yet (a customer nobody has talked to: starting a conversation by phone, a contact created by hand)
belongs to nobody, so any agent of the tenant may open it; the router then gives the conversation that opens to the
agent who wrote first, and from then on the rule applies as to any other. Pure: the caller brings the facts (the
key's owner as the service's own projection holds it, the agent's teams)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from parley_common.auth import Principal, Role
from parley_common.events.conversations import ConversationChanged

TENANT_WIDE = (Role.OWNER, Role.MANAGER, Role.INTEGRATION)


@dataclass(frozen=True)
class Owner:
    """Whose a conversation key is now: the team and the assigned agent of its latest conversation."""

    team_id: str | None
    agent: str | None


def owner_of(event: ConversationChanged) -> Owner:
    """The owner a conversation event announces (the state after the change)."""
    agent = event.assignee.id if event.assignee and event.assignee.kind == "agent" else None
    return Owner(team_id=event.team_id, agent=agent)


def sees_whole_tenant(principal: Principal) -> bool:
    return principal.has_any(TENANT_WIDE)


def may_see(principal: Principal, agent_teams: frozenset[str], owner: Owner | None) -> bool:
    """Whether `principal` may see (and act on) what belongs to a key owned by `owner` (None: no conversation)."""
    if sees_whole_tenant(principal) or owner is None:
        return True
    return (owner.team_id is not None and owner.team_id in agent_teams) or owner.agent == principal.login


def visible_whatever_the_teams(principal: Principal, owners: Iterable[Owner | None]) -> bool:
    """`may_see_any` answers yes for every set of the caller's teams: nobody's customer yet, or one of the caller's
    own conversations (an agent answering their own customer) — then the caller's teams need not be read."""
    known = [owner for owner in owners if owner is not None]
    return not known or any(owner.agent == principal.login for owner in known)


def may_see_any(principal: Principal, agent_teams: frozenset[str], owners: Iterable[Owner | None]) -> bool:
    """A customer with several keys (a contact's identities): visible when one of their conversations is; a
    customer with no conversation at all is nobody's yet. A key without a conversation never opens a customer
    whose other keys belong to someone else."""
    known = [owner for owner in owners if owner is not None]
    if not known:
        return may_see(principal, agent_teams, None)
    return any(may_see(principal, agent_teams, owner) for owner in known)
