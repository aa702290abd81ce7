"""Supervisors' figures: nearest-rank percentiles, the floor now, a period's figures per agent and team."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from parley_router.domain import conversation as c
from parley_router.domain.assignment import Agent, Presence
from parley_router.domain.conversation import Assignee, AssigneeKind
from parley_router.domain.supervision import PeriodFigures, at_capacity, floor_now, percentile

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1), st.sampled_from([0.5, 0.9]))
def test_a_percentile_is_a_value_with_at_least_that_share_at_or_below_it(values: list[float], share: float) -> None:
    found = percentile(values, share)
    assert found in values
    assert sum(value <= found for value in values) >= share * len(values)
    assert sum(value < found for value in values) < share * len(values)


def test_no_values_no_percentile() -> None:
    assert percentile([], 0.5) is None


def queued(team: str, channel_type: str, minutes_ago: int) -> c.Conversation:
    at = T0 - timedelta(minutes=minutes_ago)
    conv = c.open_conversation(f"c{team}{minutes_ago}", "t", "wa", channel_type, "u", at)
    return c.enqueue(conv, Assignee(AssigneeKind.TEAM, team), conv.opened_at)


def test_the_floor_per_team_and_channel_and_agents_by_state() -> None:
    full = Agent("ann", frozenset({"sales"}), capacity=(("whatsapp", 1),), presence=Presence.ONLINE,
                 active=(("whatsapp", 1),))
    away = Agent("bob", frozenset({"sales", "vip"}), presence=Presence.AWAY, active=(("telegram", 2),))
    view = floor_now([queued("sales", "whatsapp", 3), queued("sales", "whatsapp", 7), queued("vip", "telegram", 1)],
                     [full, away, Agent("cy")], T0)
    assert [(q["team_id"], q["channel_type"], q["queued"], q["longest_wait_seconds"]) for q in view["queues"]] == [
        ("sales", "whatsapp", 2, 420.0), ("vip", "telegram", 1, 60.0)]
    teams = {team["team_id"]: team for team in view["teams"]}
    assert teams["sales"] == {"team_id": "sales", "online": 1, "away": 1, "offline": 0, "at_capacity": 1}
    assert (teams["-"]["offline"], teams["vip"]["away"]) == (1, 1)
    assert [(a["login"], a["conversations"], a["at_capacity"]) for a in view["agents"]] == [
        ("ann", 1, True), ("bob", 2, False), ("cy", 0, False)]
    assert not at_capacity(Agent("dee", capacity=(("whatsapp", 0),)))


def test_a_periods_figures_per_agent_and_team() -> None:
    conv = queued("sales", "whatsapp", 0)
    taken = replace(c.agent_replied(conv, "ann", T0 + timedelta(seconds=30)),
                    first_assigned_at=T0 + timedelta(seconds=20))
    waiting = queued("sales", "whatsapp", 1)
    figures = PeriodFigures()
    for one in (taken, waiting):
        figures.opened(one)
    figures.closed(c.close(taken, T0 + timedelta(minutes=5)))
    result = figures.as_dict()
    assert result["total"]["opened"] == 2 and result["total"]["closed"] == 1
    [ann] = result["agents"]
    assert ann["login"] == "ann" and ann["first_response_seconds"] == {"count": 1, "median": 30.0, "p90": 30.0}
    assert ann["wait_seconds"]["median"] == 20.0
    [sales] = result["teams"]
    assert (sales["opened"], sales["closed"], sales["first_response_seconds"]["count"]) == (2, 1, 1)


def test_the_first_assignment_is_stamped_once_and_not_for_an_offer() -> None:
    conv = queued("sales", "whatsapp", 0)
    offered = c.assign(conv, Assignee(AssigneeKind.AGENT, "ann"), T0, offer_expires_at=T0 + timedelta(minutes=5))
    assert c.stamp_first_assignment(offered, T0).first_assigned_at is None
    accepted = c.stamp_first_assignment(replace(offered, offer_expires_at=None), T0 + timedelta(seconds=9))
    assert accepted.first_assigned_at == T0 + timedelta(seconds=9)
    assert c.stamp_first_assignment(accepted, T0 + timedelta(hours=1)).first_assigned_at == accepted.first_assigned_at
