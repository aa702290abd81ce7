"""Pure decisions of the router's upkeep: what the capacity reconciler heals, and which conversations an
agent going offline hands back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from parley_router.domain.capacity import (
    CHANGES_PER_WINDOW,
    MAX_CHANGE_WINDOWS,
    SlotKey,
    SlotRepair,
    apply_changes,
    by_slot,
    change_windows,
    doubted,
    over_capacity,
    repairs,
)
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status, open_conversation
from parley_router.domain.offline import OfflineMove, offline_move

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
keys = st.tuples(st.sampled_from(["ann", "bob", "cid"]), st.sampled_from(["whatsapp", "telegram"]))
sets = st.dictionaries(keys, st.frozensets(st.sampled_from([f"c{i}" for i in range(8)])), max_size=6)
holders = st.dictionaries(st.sampled_from([f"c{i}" for i in range(8)]), keys)  # conversation → the slot it holds


def test_repairs_find_leaks_and_undercounts() -> None:
    slots: dict[SlotKey, frozenset[str]] = {("ann", "whatsapp"): frozenset({"c1", "c2"}),
                                            ("bob", "whatsapp"): frozenset({"c3"})}
    held: dict[SlotKey, frozenset[str]] = {("ann", "whatsapp"): frozenset({"c1", "c4"}),
                                           ("bob", "whatsapp"): frozenset({"c3"})}
    found = {(r.login, r.channel_type): (r.stale, r.missing) for r in repairs(slots, held)}
    assert found == {("ann", "whatsapp"): (("c2",), ("c4",)), ("bob", "whatsapp"): ((), ())}


@given(sets, sets)
def test_applying_repairs_makes_the_slots_equal_the_truth(slots: dict[SlotKey, frozenset[str]],
                                                          held: dict[SlotKey, frozenset[str]]) -> None:
    healed = {key: set(members) for key, members in slots.items()}
    for repair in repairs(slots, held):
        key = (repair.login, repair.channel_type)
        current = healed.setdefault(key, set())
        assert not set(repair.stale) & held.get(key, frozenset())  # a held conversation is never removed
        current -= set(repair.stale)
        current |= set(repair.missing)
    assert {k: v for k, v in healed.items() if v} == {k: set(v) for k, v in held.items() if v}


@given(sets, holders, holders)
def test_a_plan_from_a_view_behind_the_truth_read_again_where_it_doubts_repairs_only_what_the_truth_asks(
        slots: dict[SlotKey, frozenset[str]], truth: dict[str, SlotKey], view: dict[str, SlotKey]) -> None:
    """A round between full reads plans from its view, reads again the conversations the plan names and plans
    again: every removal and put-back left is one the truth asks for; with a view equal to the truth, all of them."""
    planned = repairs(slots, by_slot(view))
    apply_changes(view, {conversation_id: truth.get(conversation_id) for conversation_id in doubted(planned)})
    rechecked = repairs(slots, by_slot(view))

    asked = {(repair.login, repair.channel_type): repair for repair in repairs(slots, by_slot(truth))}
    for repair in rechecked:
        true_repair = asked.get((repair.login, repair.channel_type), SlotRepair(repair.login, repair.channel_type))
        assert set(repair.stale) <= set(true_repair.stale)
        assert set(repair.missing) <= set(true_repair.missing)
    if view == truth:
        assert [repair for repair in rechecked if repair.stale or repair.missing] == [
            repair for repair in asked.values() if repair.stale or repair.missing]


def test_a_view_follows_the_conversations_read_again() -> None:
    view: dict[str, SlotKey] = {"c1": ("ann", "whatsapp"), "c2": ("bob", "whatsapp")}
    apply_changes(view, {"c1": None, "c2": ("ann", "telegram"), "c3": ("bob", "whatsapp"), "c4": None})
    assert by_slot(view) == {("ann", "telegram"): {"c2"}, ("bob", "whatsapp"): {"c3"}}


@given(st.integers(0, 10 * CHANGES_PER_WINDOW * MAX_CHANGE_WINDOWS), st.integers(0, 1000))
def test_a_round_reads_in_more_windows_only_as_the_changes_grow(read: int, more: int) -> None:
    windows = change_windows(read)
    assert 1 <= windows <= MAX_CHANGE_WINDOWS
    assert windows <= change_windows(read + more)  # never fewer windows for more changes
    if windows < MAX_CHANGE_WINDOWS:  # as many as the last round read: no window above its share
        assert read <= windows * CHANGES_PER_WINDOW
    assert change_windows(0) == change_windows(CHANGES_PER_WINDOW) == 1  # a quiet tenant: one query


@given(st.integers(0, 50), st.integers(0, 50))
def test_over_capacity_is_the_excess_only(count: int, capacity: int) -> None:
    assert over_capacity(count, capacity) == (count - capacity if count > capacity else 0)


def _conv(**changes: object) -> Conversation:
    base = open_conversation("c1", "acme", "wa-1", "whatsapp", "u1", NOW)
    return replace(base, **changes)  # type: ignore[arg-type]


ANN = Assignee(AssigneeKind.AGENT, "ann")
OFFER = {"status": Status.ASSIGNED, "assignee": ANN, "team_id": "sales", "offer_expires_at": NOW + timedelta(5)}
ACCEPTED = {"status": Status.ASSIGNED, "assignee": ANN, "team_id": "sales"}


def test_offline_move_decision_table() -> None:
    assert offline_move(_conv(**OFFER), "ann", requeue_assigned=False) is OfflineMove.WITHDRAW_OFFER
    assert offline_move(_conv(**OFFER), "ann", requeue_assigned=True) is OfflineMove.WITHDRAW_OFFER
    assert offline_move(_conv(**ACCEPTED), "ann", requeue_assigned=False) is None
    assert offline_move(_conv(**ACCEPTED), "ann", requeue_assigned=True) is OfflineMove.RETURN_TO_TEAM
    assert offline_move(_conv(**{**ACCEPTED, "team_id": None}), "ann", requeue_assigned=True) is None  # no queue
    assert offline_move(_conv(**OFFER), "bob", requeue_assigned=True) is None  # not hers
    assert offline_move(_conv(**{**ACCEPTED, "status": Status.SNOOZED}), "ann", requeue_assigned=True) is None
    assert offline_move(_conv(**{**ACCEPTED, "status": Status.CLOSED}), "ann", requeue_assigned=True) is None


@given(st.sampled_from(list(Status)), st.booleans(), st.booleans(), st.sampled_from(["ann", "bob"]))
def test_offline_moves_only_the_agents_assigned_conversations(status: Status, offered: bool, requeue: bool,
                                                              login: str) -> None:
    conv = _conv(status=status, assignee=ANN, team_id="sales",
                 offer_expires_at=NOW + timedelta(minutes=5) if offered else None)
    move = offline_move(conv, login, requeue)
    if login != "ann" or status is not Status.ASSIGNED:
        assert move is None
    elif offered:
        assert move is OfflineMove.WITHDRAW_OFFER  # an unaccepted offer always returns
    else:
        assert move is (OfflineMove.RETURN_TO_TEAM if requeue else None)
