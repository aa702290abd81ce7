"""The visibility rule every service applies (parley_common.visibility), over every combination of roles, teams
and owners."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from parley_common.auth import Principal, Role
from parley_common.events.conversations import Assignee, ConversationChanged
from parley_common.visibility import (
    Owner,
    may_see,
    may_see_any,
    owner_of,
    sees_whole_tenant,
    visible_whatever_the_teams,
)

NAMES = st.sampled_from(["ana", "bo", "cy"])
TEAMS = st.sampled_from(["sales", "support", "vip"])
principals = st.builds(lambda login, roles: Principal("acme", login, frozenset(roles)), NAMES,
                       st.sets(st.sampled_from(list(Role)), min_size=1))
owners = st.none() | st.builds(Owner, st.none() | TEAMS, st.none() | NAMES)
team_sets = st.frozensets(TEAMS)


@given(principals, team_sets, owners)
def test_tenant_wide_roles_see_everything_and_agents_their_teams_and_their_own(
        principal: Principal, teams: frozenset[str], owner: Owner | None) -> None:
    expected = (principal.has_any((Role.OWNER, Role.MANAGER, Role.INTEGRATION)) or owner is None
                or owner.team_id in teams or owner.agent == principal.login)
    assert may_see(principal, teams, owner) is expected


@given(NAMES, team_sets, st.none() | TEAMS, st.none() | NAMES)
def test_an_agent_never_sees_another_teams_conversation_assigned_to_someone_else(
        login: str, teams: frozenset[str], team: str | None, agent: str | None) -> None:
    principal = Principal("acme", login, frozenset({Role.AGENT}))
    if team not in teams and agent != login:
        assert not may_see(principal, teams, Owner(team, agent))


@given(principals, team_sets, st.lists(owners, max_size=4))
def test_a_customer_with_several_keys_is_visible_through_any_owned_one_and_unowned_only_when_none_is_owned(
        principal: Principal, teams: frozenset[str], keys: list[Owner | None]) -> None:
    owned = [owner for owner in keys if owner is not None]
    expected = sees_whole_tenant(principal) or (any(may_see(principal, teams, owner) for owner in owned)
                                                if owned else True)
    assert may_see_any(principal, teams, keys) is expected


@given(st.none() | TEAMS, st.none() | st.tuples(st.sampled_from(["agent", "team", "bot", "queue"]), NAMES))
def test_the_owner_of_a_conversation_event_is_its_team_and_assigned_agent(
        team: str | None, assignee: tuple[str, str] | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    event = ConversationChanged(occurred_at=now, tenant_id="acme", correlation_id="c", channel_id="wa",
                                external_user_id="u", conversation_id="c1", change="assigned", status="assigned",
                                assignee=Assignee(kind=assignee[0], id=assignee[1]) if assignee else None,  # type: ignore[arg-type]
                                team_id=team, changed_at=now)
    agent = assignee[1] if assignee and assignee[0] == "agent" else None
    assert owner_of(event) == Owner(team, agent)


@given(principals, st.lists(owners, max_size=4), team_sets)
def test_a_customer_visible_whatever_the_teams_is_visible_with_any_teams(
        principal: Principal, keys: list[Owner | None], teams: frozenset[str]) -> None:
    if visible_whatever_the_teams(principal, keys):  # the caller's teams are then not read
        assert may_see_any(principal, teams, keys)
    else:  # someone else's: the teams decide
        assert may_see_any(principal, teams, keys) is (sees_whole_tenant(principal) or any(
            owner is not None and owner.team_id in teams for owner in keys))
