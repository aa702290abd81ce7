"""Tab counters: after any sequence of stored transitions, in any grouping of batches, the counters equal a
recount, and the tabs summed from them equal the tabs counted conversation by conversation; the repair only
touches a counter two recounts in a row found wrong while no change came in."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status
from parley_router.domain.tab_counts import (
    MINE,
    Bucket,
    Counted,
    Suspect,
    arrivals,
    bucket_of,
    confirmed,
    moves,
    suspects,
    tabs,
)

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LOGINS = ("ann", "bob")
assignees = st.one_of(st.none(), st.sampled_from([Assignee(AssigneeKind.AGENT, login) for login in LOGINS]),
                      st.just(Assignee(AssigneeKind.BOT, "faq")), st.just(Assignee(AssigneeKind.TEAM, "t1")))
states = st.builds(lambda status, team, assignee, archived, blocked, unanswered: {
    "status": status, "team_id": team, "assignee": assignee, "archived": archived, "blocked": blocked,
    "unanswered": unanswered}, st.sampled_from(list(Status)), st.sampled_from([None, "t1", "t2"]), assignees,
    st.booleans(), st.booleans(), st.booleans())
# (which conversation, its next state, does a new batch start here)
steps = st.lists(st.tuples(st.integers(0, 5), states, st.booleans()), max_size=60)


def conversation(index: int) -> Conversation:
    return Conversation(id=f"c{index}", tenant_id="acme", channel_id="wa-1", channel_type="whatsapp",
                        external_user_id=f"u{index}", status=Status.QUEUED, opened_at=T0, last_activity_at=T0)


def counted_one_by_one(convs: list[Conversation], login: str, teams: frozenset[str], whole: bool,
                       ) -> dict[str, int]:
    """The tabs as the inbox queries count them (http_conversations, the per-brand path)."""
    seen = [conv for conv in convs
            if not conv.blocked and (whole or conv.team_id in teams or conv.agent == login)]
    result = {status.value: sum(1 for conv in seen if conv.status is status and not conv.archived)
              for status in Status}
    result["unanswered"] = sum(1 for conv in seen if conv.unanswered and not conv.archived and conv.is_open)
    result["archived"] = sum(1 for conv in seen if conv.archived)
    result["mine"] = sum(1 for conv in seen if conv.agent == login and conv.status.value in MINE)
    return result


@settings(max_examples=300, deadline=None)
@given(steps)
def test_counters_kept_per_transition_equal_a_recount_and_the_tabs_counted_one_by_one(
        sequence: list[tuple[int, dict[str, object], bool]]) -> None:
    stored: dict[int, Conversation] = {}
    counters: Counter[Bucket] = Counter()
    batch: list[tuple[Conversation | None, Conversation]] = []
    for index, state, new_batch in sequence:
        if new_batch:  # a tick's bulk write: its transitions are added together
            counters.update(moves(batch))
            batch = []
        before = stored.get(index)
        after = replace(before or conversation(index), **state)  # type: ignore[arg-type]
        batch.append((before, after))
        stored[index] = after
    counters.update(moves(batch))

    assert +counters == Counter(bucket_of(conv) for conv in stored.values())
    convs = list(stored.values())
    for login, teams, whole in (("ann", frozenset({"t1"}), False), ("bob", frozenset(), False),
                                ("boss", frozenset(), True)):
        assert tabs(counters.items(), login, teams, whole) == counted_one_by_one(convs, login, teams, whole)


def test_a_transition_that_keeps_the_bucket_moves_nothing() -> None:
    conv = conversation(1)
    assert moves([(conv, replace(conv, last_activity_at=T0.replace(hour=11), labels=("vip",)))]) == {}
    assert moves([(None, conv)]) == {bucket_of(conv): 1}


def test_a_closed_conversation_is_in_no_unanswered_bucket() -> None:
    closed = replace(conversation(1), status=Status.CLOSED, unanswered=True)
    assert bucket_of(closed) == bucket_of(replace(closed, unanswered=False))


BUCKET = bucket_of(conversation(1))
OTHER = bucket_of(replace(conversation(2), status=Status.ASSIGNED))


def test_a_counter_that_changed_during_the_recount_is_not_suspected() -> None:
    before = {BUCKET: Counted(3, 7), OTHER: Counted(1, 2)}
    after = {BUCKET: Counted(4, 8), OTHER: Counted(1, 2)}
    assert suspects(before, {BUCKET: 5, OTHER: 1}, after) == {}
    assert suspects(before, {BUCKET: 4, OTHER: 2}, before) == {BUCKET: Suspect(7, 4), OTHER: Suspect(2, 2)}


def test_a_missing_counter_and_a_counter_of_nothing_are_suspected() -> None:
    assert suspects({}, {BUCKET: 2}, {}) == {BUCKET: Suspect(None, 2)}
    assert suspects({OTHER: Counted(1, 4)}, {}, {OTHER: Counted(1, 4)}) == {OTHER: Suspect(4, 0)}


def test_only_a_suspect_found_alike_twice_is_confirmed() -> None:
    first = {BUCKET: Suspect(7, 4), OTHER: Suspect(2, 2)}
    second = {BUCKET: Suspect(7, 4), OTHER: Suspect(3, 2)}  # OTHER took a change in between
    assert confirmed(first, second) == {BUCKET: Suspect(7, 4)}
    assert confirmed({}, second) == {}


def test_an_arrival_is_a_conversation_coming_into_a_bucket_with_its_latest_activity() -> None:
    first, second = conversation(1), replace(conversation(2), last_activity_at=T0.replace(hour=12))
    assigned = replace(first, status=Status.ASSIGNED, last_activity_at=T0.replace(hour=11))
    later = replace(assigned, last_activity_at=T0.replace(hour=13))  # a message: same bucket
    assert arrivals([(None, first), (None, second), (first, assigned), (assigned, later)]) == {
        bucket_of(first): T0.replace(hour=12), bucket_of(assigned): T0.replace(hour=11)}
