"""Assignment policy: strategies, sticky agents, eligibility, queue order; hypothesis for the invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from parley_router.domain.assignment import (
    Agent,
    Presence,
    Roster,
    Strategy,
    Team,
    Waiting,
    candidate_logins,
    drain,
    eligible,
    pick_agent,
    queue_order,
)
from parley_router.domain.conversation import Assignee, AssigneeKind

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
SALES = Assignee(AssigneeKind.TEAM, "sales")
ON = Presence.ONLINE


def agent(login: str, presence: Presence = ON, active: int = 0, cap: int = 2, **kw: object) -> Agent:
    return Agent(login, teams=frozenset({"sales"}), capacity=(("whatsapp", cap),), presence=presence,
                 active=(("whatsapp", active),), **kw)  # type: ignore[arg-type]


def waiting(cid: str, priority: int = 0, minutes: int = 0, sticky: str | None = None,
            target: Assignee = SALES) -> Waiting:
    return Waiting(cid, "whatsapp", target, priority, T0 + timedelta(minutes=minutes), sticky)


def test_only_online_agents_with_room_are_eligible() -> None:
    agents = [agent("a"), agent("b", Presence.AWAY), agent("c", Presence.OFFLINE), agent("d", active=2)]
    assert [a.login for a in eligible(agents, SALES, "whatsapp")] == ["a"]


def test_capacity_is_per_channel_type() -> None:
    busy_on_wa = agent("a", active=2)
    assert not busy_on_wa.has_room("whatsapp")
    assert busy_on_wa.has_room("email")  # default capacity on other channels


def test_round_robin_rotates_and_least_busy_picks_fewest() -> None:
    agents = [agent("a", active=1), agent("b"), agent("c", active=1), agent("d", active=2)]  # d is full

    def picked(strategy: Strategy, last: str | None) -> str | None:
        chosen = pick_agent(waiting("c1"), agents, Team("sales", strategy), last)
        return chosen.login if chosen else None

    assert picked(Strategy.ROUND_ROBIN, None) == "a"
    assert picked(Strategy.ROUND_ROBIN, "a") == "b"
    assert picked(Strategy.ROUND_ROBIN, "c") == "a"  # d has no room: wraps around
    assert picked(Strategy.ROUND_ROBIN, "zz") == "a"  # a cursor on someone who left the team
    assert picked(Strategy.LEAST_BUSY, None) == "b"
    assert picked(Strategy.MANUAL, None) is None


def test_sticky_agent_preferred_when_available_else_strategy() -> None:
    team = Team("sales", Strategy.ROUND_ROBIN)
    agents = [agent("a"), agent("b")]
    assert pick_agent(waiting("c1", sticky="b"), agents, team, None).login == "b"  # type: ignore[union-attr]
    agents_b_full = [agent("a"), agent("b", active=2)]
    assert pick_agent(waiting("c1", sticky="b"), agents_b_full, team, None).login == "a"  # type: ignore[union-attr]


def test_manual_team_keeps_conversations_in_queue() -> None:
    plan = drain([waiting("c1")], [agent("a")], {"sales": Team("sales", Strategy.MANUAL)})
    assert plan.assignments == [] and [w.conversation_id for w in plan.still_waiting] == ["c1"]


def test_skill_and_agent_targets() -> None:
    spanish = Agent("es", skills=frozenset({"es"}), presence=ON)
    plan = drain([waiting("c1", target=Assignee(AssigneeKind.SKILL, "es")),
                  waiting("c2", target=Assignee(AssigneeKind.AGENT, "es")),
                  waiting("c3", target=Assignee(AssigneeKind.AGENT, "ghost"))], [spanish, agent("a")], {})
    assert sorted(plan.assignments) == [("c1", "es"), ("c2", "es")]
    assert [w.conversation_id for w in plan.still_waiting] == ["c3"]


def test_queue_order_highest_priority_then_longest_waiting() -> None:
    entries = [waiting("new", minutes=5), waiting("old", minutes=0), waiting("urgent", priority=3, minutes=9)]
    assert [w.conversation_id for w in queue_order(entries)] == ["urgent", "old", "new"]


def test_drain_serves_queue_order_when_capacity_is_short() -> None:
    plan = drain([waiting("new", minutes=5), waiting("old")], [agent("a", cap=1)],
                 {"sales": Team("sales")})
    assert plan.assignments == [("old", "a")]


agents_strategy = st.lists(
    st.builds(
        Agent,
        login=st.sampled_from(["a", "b", "c", "d", "e"]),
        teams=st.frozensets(st.sampled_from(["sales", "support"]), max_size=2),
        skills=st.frozensets(st.sampled_from(["es", "vip"]), max_size=2),
        capacity=st.lists(st.tuples(st.sampled_from(["whatsapp", "email"]), st.integers(0, 3)), max_size=2)
        .map(lambda pairs: tuple(sorted(dict(pairs).items()))),
        default_capacity=st.integers(0, 3),
        presence=st.sampled_from(list(Presence)),
        active=st.lists(st.tuples(st.sampled_from(["whatsapp", "email"]), st.integers(0, 3)), max_size=2)
        .map(lambda pairs: tuple(sorted(dict(pairs).items()))),
    ),
    max_size=5,
    unique_by=lambda a: a.login,
)
targets = st.builds(Assignee, kind=st.sampled_from([AssigneeKind.TEAM, AssigneeKind.SKILL, AssigneeKind.AGENT]),
                    id=st.sampled_from(["sales", "support", "es", "vip", "a", "b"]))
queue_strategy = st.lists(
    st.builds(Waiting, conversation_id=st.uuids().map(str), channel_type=st.sampled_from(["whatsapp", "email"]),
              target=targets, priority=st.integers(0, 3),
              waiting_since=st.integers(0, 1000).map(lambda m: T0 + timedelta(minutes=m)),
              sticky_agent=st.none() | st.sampled_from(["a", "b", "c"])),
    max_size=25, unique_by=lambda w: w.conversation_id,
)
teams_strategy = st.fixed_dictionaries({
    "sales": st.builds(Team, id=st.just("sales"), strategy=st.sampled_from(list(Strategy))),
    "support": st.builds(Team, id=st.just("support"), strategy=st.sampled_from(list(Strategy))),
})


@settings(max_examples=300, deadline=None)
@given(queue=queue_strategy, agents=agents_strategy, teams=teams_strategy)
def test_drain_invariants(queue: list[Waiting], agents: list[Agent], teams: dict[str, Team]) -> None:
    plan = drain(queue, agents, teams)
    assigned_ids = [cid for cid, _ in plan.assignments]
    # no double assignment, and no conversation lost: every one is either assigned or still waiting
    assert len(assigned_ids) == len(set(assigned_ids))
    assert sorted(assigned_ids + [w.conversation_id for w in plan.still_waiting]) == sorted(
        w.conversation_id for w in queue)
    # no capacity overrun, only online agents
    by_login = {a.login: a for a in agents}
    channel_of = {w.conversation_id: w.channel_type for w in queue}
    taken: dict[tuple[str, str], int] = {}
    for cid, login in plan.assignments:
        assert by_login[login].presence is Presence.ONLINE
        key = (login, channel_of[cid])
        taken[key] = taken.get(key, 0) + 1
    for (login, channel), count in taken.items():
        assert by_login[login].active_on(channel) + count <= by_login[login].max_for(channel)
    # what still waits stays in queue order
    assert plan.still_waiting == queue_order(plan.still_waiting)


@settings(max_examples=200, deadline=None)
@given(queue=queue_strategy, agents=agents_strategy, teams=teams_strategy)
def test_a_waiting_conversation_is_never_skipped_for_a_later_one_it_could_take(
        queue: list[Waiting], agents: list[Agent], teams: dict[str, Team]) -> None:
    """Whatever still waits had no eligible agent left (except a manual team) when its turn came."""
    plan = drain(queue, agents, teams)
    final = {a.login: a for a in agents}
    for cid, login in plan.assignments:
        final[login] = final[login].took(next(w.channel_type for w in queue if w.conversation_id == cid))
    for left in plan.still_waiting:
        team = teams.get(left.target.id) if left.target.kind is AssigneeKind.TEAM else None
        manual = team is not None and team.strategy is Strategy.MANUAL
        if not manual:
            assert eligible(list(final.values()), left.target, left.channel_type) == []


def reference_drain(queue: list[Waiting], agents: list[Agent], teams: dict[str, Team]) -> list[tuple[str, str]]:
    """The plan spelled out naively (every agent checked for every conversation): the oracle for the indexed
    Roster, which must choose exactly the same agents."""
    by_login = {a.login: a for a in agents}
    cursors: dict[str, str] = {}
    assignments = []
    for w in queue_order(queue):
        team = teams.get(w.target.id) if w.target.kind is AssigneeKind.TEAM else None
        ordered = sorted(eligible(list(by_login.values()), w.target, w.channel_type), key=lambda a: a.login)
        sticky = by_login.get(w.sticky_agent or "")
        chosen: Agent | None
        if sticky and sticky.can_take(w.channel_type) and (
                team is None or w.target.kind is not AssigneeKind.TEAM or w.target.id in sticky.teams):
            chosen = sticky
        elif w.target.kind is AssigneeKind.AGENT or not ordered:
            chosen = ordered[0] if ordered else None
        elif (team.strategy if team else Strategy.LEAST_BUSY) is Strategy.LEAST_BUSY:
            chosen = min(ordered, key=lambda a: (a.active_on(w.channel_type), a.total_active))
        elif team is not None and team.strategy is Strategy.MANUAL:
            chosen = None
        else:
            last = cursors.get(w.target.id)
            chosen = ([a for a in ordered if last is not None and a.login > last] or ordered)[0]
        if chosen is not None:
            by_login[chosen.login] = chosen.took(w.channel_type)
            cursors[w.target.id] = chosen.login
            assignments.append((w.conversation_id, chosen.login))
    return assignments


@settings(max_examples=300, deadline=None)
@given(queue=queue_strategy, agents=agents_strategy, teams=teams_strategy)
def test_the_indexed_plan_chooses_what_the_naive_one_does(
        queue: list[Waiting], agents: list[Agent], teams: dict[str, Team]) -> None:
    assert drain(queue, agents, teams).assignments == reference_drain(queue, agents, teams)


def test_an_agent_full_on_every_channel_in_question_is_no_candidate() -> None:
    profile = Agent("a", teams=frozenset({"sales"}), capacity=(("whatsapp", 2),), default_capacity=1)
    full = profile.live(ON, (("whatsapp", 2), ("email", 1)))
    assert not full.has_room_on_any()
    assert profile.live(ON, (("whatsapp", 2), ("email", 0))).has_room_on_any()
    assert full.teams == profile.teams and full.presence is ON


def team_of(size: int, active: int = 0) -> list[Agent]:
    return [agent(f"a{i:03d}", active=active, cap=5) for i in range(size)]


def test_a_large_round_robin_team_reads_a_window_after_its_cursor_wrapping_around() -> None:
    rr = {"sales": Team("sales", Strategy.ROUND_ROBIN)}
    logins, complete = candidate_logins(Roster(team_of(100)), [waiting("c1")], rr, {"sales": "a090"})
    assert not complete
    assert logins == sorted([f"a{i:03d}" for i in range(91, 100)] + [f"a{i:03d}" for i in range(23)])
    many = [waiting(f"c{n}") for n in range(20)]  # twice the waiting ones when that is more than 32
    assert len(candidate_logins(Roster(team_of(100)), many, rr, {})[0]) == 40


def test_other_strategies_small_teams_and_sticky_agents() -> None:
    least_busy = {"sales": Team("sales", Strategy.LEAST_BUSY)}
    assert candidate_logins(Roster(team_of(100)), [waiting("c1")], least_busy, {}) == (
        [f"a{i:03d}" for i in range(100)], True)
    assert candidate_logins(Roster(team_of(10)), [waiting("c1")], {"sales": Team("sales")}, {}) == (
        [f"a{i:03d}" for i in range(10)], True)
    manual = {"sales": Team("sales", Strategy.MANUAL)}
    assert candidate_logins(Roster(team_of(100)), [waiting("c1", sticky="a077")], manual, {}) == (["a077"], True)
    rr = {"sales": Team("sales", Strategy.ROUND_ROBIN)}
    assert "a077" in candidate_logins(Roster(team_of(100)), [waiting("c1", sticky="a077")], rr, {})[0]


def test_everyone_in_scope_is_the_targets_agents_and_the_sticky_ones_once_each() -> None:
    others = [Agent("z1", teams=frozenset({"support"})), Agent("z2", skills=frozenset({"french"}))]
    roster = Roster(team_of(3) + others)
    queue = [waiting("c1"), waiting("c2", sticky="z1"), waiting("c3", sticky="gone")]
    assert roster.in_scope_of(queue) == ["a000", "a001", "a002", "z1"]
    assert roster.in_scope_of([waiting("c4", target=Assignee(AssigneeKind.SKILL, "french"))]) == ["z2"]


@settings(max_examples=200, deadline=None)
@given(size=st.integers(33, 120), waiting_count=st.integers(1, 40), cursor=st.none() | st.integers(0, 119),
       busy=st.lists(st.integers(0, 119), max_size=15))
def test_a_window_plans_like_the_whole_team_while_it_has_room(size: int, waiting_count: int, cursor: int | None,
                                                              busy: list[int]) -> None:
    """Round robin over the window chooses what it would over everyone, as long as the window serves every
    waiting conversation without coming back to its start (the dispatcher re-plans with everyone otherwise)."""
    agents = [agent(f"a{i:03d}", active=5 if i in busy else 0, cap=5) for i in range(size)]
    queue = [waiting(f"c{n:02d}", minutes=n) for n in range(waiting_count)]
    teams = {"sales": Team("sales", Strategy.ROUND_ROBIN)}
    cursors = {"sales": f"a{cursor:03d}"} if cursor is not None else {}
    logins, complete = candidate_logins(Roster(agents), queue, teams, cursors)
    window = [a for a in agents if a.login in set(logins)]
    windowed = drain(queue, window, teams, dict(cursors))
    full = drain(queue, agents, teams, dict(cursors))
    rotation = [a.login for a in sorted(window, key=lambda a: a.login)]
    start = sum(1 for login in rotation if cursor is not None and login <= f"a{cursor:03d}")
    ordered = rotation[start:] + rotation[:start]
    picks = [login for _, login in windowed.assignments]
    wrapped = any(ordered.index(b) < ordered.index(a) for a, b in pairwise(picks))
    if complete or not (windowed.still_waiting or wrapped):
        assert windowed.assignments == full.assignments


def test_an_agent_who_declined_is_never_picked_for_that_conversation() -> None:
    agents = [agent("a"), agent("b", active=1), agent("c")]
    declined = Waiting("c1", "whatsapp", SALES, 0, T0, "a", frozenset({"a"}))
    for strategy in Strategy:
        chosen = pick_agent(declined, agents, Team("sales", strategy), None)
        assert chosen is None if strategy is Strategy.MANUAL else chosen is not None and chosen.login != "a"
    assert pick_agent(declined, agents, Team("sales", Strategy.LEAST_BUSY), None).login == "c"  # type: ignore[union-attr]
    only_a = Waiting("c2", "whatsapp", Assignee(AssigneeKind.AGENT, "a"), 0, T0, None, frozenset({"a"}))
    assert pick_agent(only_a, agents, None, None) is None
    everyone = Waiting("c3", "whatsapp", SALES, 0, T0, None, frozenset({"a", "b", "c"}))
    assert drain([everyone], agents, {"sales": Team("sales")}).still_waiting == [everyone]
