"""The conversation state machine: every status, flag and invalid transition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from parley_router.domain import conversation as c
from parley_router.domain.conversation import Assignee, AssigneeKind, Status, TransitionError

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
AGENT = Assignee(AssigneeKind.AGENT, "ann")
TEAM = Assignee(AssigneeKind.TEAM, "sales")
BOT = Assignee(AssigneeKind.BOT, "faq-bot")


def new() -> c.Conversation:
    return c.open_conversation("c1", "acme", "wa-1", "whatsapp", "u1", T0)


def test_new_conversation_is_queued_unanswered_and_waiting() -> None:
    conv = new()
    assert (conv.status, conv.unanswered, conv.waiting_since, conv.is_open) == (Status.QUEUED, True, T0, True)


def test_assign_to_agent_team_skill_and_bot() -> None:
    assert c.assign(new(), AGENT, T0).status is Status.ASSIGNED
    team = c.assign(new(), TEAM, T0)
    assert (team.status, team.team_id) == (Status.QUEUED, "sales")
    assert c.assign(new(), Assignee(AssigneeKind.SKILL, "es"), T0).status is Status.QUEUED
    assert c.assign(new(), BOT, T0).status is Status.BOT


def test_assigning_the_same_target_twice_is_a_conflict() -> None:
    with pytest.raises(TransitionError) as err:
        c.assign(c.assign(new(), AGENT, T0), AGENT, T0)
    assert err.value.code == "already_assigned"


def test_agent_reply_answers_assigns_and_records_first_response_once() -> None:
    later = T0 + timedelta(minutes=3)
    conv = c.agent_replied(new(), "bob", later)
    assert (conv.status, conv.agent, conv.unanswered, conv.waiting_since) == (Status.ASSIGNED, "bob", False, None)
    assert conv.first_response_seconds == 180
    again = c.agent_replied(conv, "bob", later + timedelta(minutes=5))
    assert again.first_response_at == later


def test_a_reply_answers_once_and_the_customer_writing_after_it_stays_unanswered() -> None:
    answered = c.agent_replied(new(), "bob", T0 + timedelta(minutes=1), "out:r1")
    wrote_again = c.customer_wrote(answered, T0 + timedelta(minutes=2))
    assert c.agent_replied(wrote_again, "bob", T0 + timedelta(minutes=1), "out:r1") == wrote_again
    assert not c.agent_replied(wrote_again, "bob", T0 + timedelta(minutes=3), "out:r2").unanswered
    by_bot = c.bot_replied(c.assign(new(), BOT, T0), T0, "out:b1")
    bot_again = c.customer_wrote(by_bot, T0 + timedelta(minutes=1))
    assert by_bot.answered_by_reply == "out:b1" and c.bot_replied(bot_again, T0, "out:b1") == bot_again


def test_agent_reply_takes_conversation_from_bot_and_accepts_offer() -> None:
    conv = c.assign(new(), BOT, T0)
    assert c.agent_replied(conv, "ann", T0).agent == "ann"
    offered = c.assign(new(), AGENT, T0, offer_expires_at=T0 + timedelta(minutes=5))
    assert c.agent_replied(offered, "ann", T0).offer_expires_at is None


def test_reply_by_another_agent_keeps_the_assignee() -> None:
    conv = c.agent_replied(c.assign(new(), AGENT, T0), "bob", T0)
    assert conv.agent == "ann"


def test_close_twice_is_a_conflict_and_reopen_requeues() -> None:
    closed = c.close(c.assign(new(), AGENT, T0), T0, note="solved")
    assert (closed.status, closed.closing_note) == (Status.CLOSED, "solved")
    with pytest.raises(TransitionError, match="already closed"):
        c.close(closed, T0)
    reopened = c.reopen(closed, T0 + timedelta(hours=1))
    assert (reopened.status, reopened.closed_at, reopened.unanswered) == (Status.QUEUED, None, True)
    with pytest.raises(TransitionError) as err:
        c.reopen(reopened, T0)
    assert err.value.code == "not_closed"


@pytest.mark.parametrize("action", [
    lambda conv: c.assign(conv, AGENT, T0),
    lambda conv: c.snooze(conv, T0 + timedelta(hours=1), T0),
    lambda conv: c.customer_wrote(conv, T0),
    lambda conv: c.set_status(conv, Status.QUEUED, T0, "ann"),
])
def test_closed_conversation_refuses_actions(action: object) -> None:
    closed = c.close(new(), T0)
    with pytest.raises(TransitionError) as err:
        action(closed)  # type: ignore[operator]
    assert err.value.code == "conversation_closed"


def test_snooze_wakes_on_time_and_on_customer_message() -> None:
    assigned = c.assign(new(), AGENT, T0)
    snoozed = c.snooze(assigned, T0 + timedelta(hours=1), T0)
    assert snoozed.status is Status.SNOOZED
    assert c.wake(snoozed, T0 + timedelta(minutes=30)).status is Status.SNOOZED
    assert c.wake(snoozed, T0 + timedelta(hours=1)).status is Status.ASSIGNED
    assert c.customer_wrote(snoozed, T0 + timedelta(minutes=1)).status is Status.ASSIGNED
    unassigned = c.snooze(new(), T0 + timedelta(hours=1), T0)
    assert c.customer_wrote(unassigned, T0).status is Status.QUEUED


def test_snooze_in_the_past_is_unprocessable() -> None:
    with pytest.raises(TransitionError) as err:
        c.snooze(new(), T0, T0)
    assert err.value.status == 422


def test_archive_hides_until_someone_writes() -> None:
    archived = c.archive(new(), T0)
    assert archived.archived
    with pytest.raises(TransitionError):
        c.archive(archived, T0)
    assert not c.customer_wrote(archived, T0).archived
    assert not c.agent_replied(archived, "ann", T0).archived


def test_mark_unanswered_and_answered_by_hand() -> None:
    answered = c.mark(new(), False, T0)
    assert (answered.unanswered, answered.waiting_since) == (False, None)
    assert c.mark(answered, True, T0).waiting_since == T0


def test_priority_bounds() -> None:
    assert c.set_priority(new(), 3).priority == 3
    with pytest.raises(TransitionError) as err:
        c.set_priority(new(), 9)
    assert (err.value.code, err.value.status) == ("invalid_priority", 422)


def test_manual_status_change_takes_conversation_from_bot() -> None:
    bot = c.assign(new(), BOT, T0)
    assert c.set_status(bot, Status.ASSIGNED, T0, "ann").agent == "ann"
    assert c.set_status(bot, Status.QUEUED, T0, "ann").status is Status.QUEUED
    with pytest.raises(TransitionError) as err:
        c.set_status(bot, Status.BOT, T0, "ann")
    assert err.value.code == "same_status"


def test_offer_expiry_returns_to_team_queue() -> None:
    offered = c.assign(c.assign(new(), TEAM, T0), AGENT, T0, offer_expires_at=T0 + timedelta(minutes=5))
    assert not c.offer_expired(offered, T0 + timedelta(minutes=4))
    assert c.offer_expired(offered, T0 + timedelta(minutes=5))
    back = c.return_to_queue(offered, T0 + timedelta(minutes=5))
    assert (back.status, back.assignee, back.waiting_since) == (Status.QUEUED, TEAM, T0)


def test_blocked_conversation_cannot_be_assigned() -> None:
    blocked = c.open_conversation("c2", "acme", "wa-1", "whatsapp", "u2", T0, blocked=True)
    with pytest.raises(TransitionError) as err:
        c.assign(blocked, AGENT, T0)
    assert err.value.code == "customer_blocked"


def test_timeline_orders_by_time_then_messages_before_activity_then_arrival_then_id() -> None:
    from parley_router.domain.timeline import Entry, EntryKind, ordered

    late = Entry("in:b", EntryKind.INBOUND, T0 + timedelta(seconds=5))
    arrived_first = Entry("in:y", EntryKind.INBOUND, T0, received_at=T0 + timedelta(milliseconds=100))
    arrived_next = Entry("in:x", EntryKind.INBOUND, T0, received_at=T0 + timedelta(milliseconds=900))
    entries = [Entry("act:1", EntryKind.ACTIVITY, T0), late, arrived_next, Entry("out:z", EntryKind.OUTBOUND, T0),
               arrived_first, Entry("in:a", EntryKind.INBOUND, T0)]
    # without an arrival time (ours, and inbound ones stored before it was kept) first, as the database sorts them
    assert [e.id for e in ordered(entries)] == ["in:a", "out:z", "in:y", "in:x", "act:1", "in:b"]


def offered_to(login: str, conv: c.Conversation | None = None) -> c.Conversation:
    return c.assign(c.assign(conv or new(), TEAM, T0), Assignee(AssigneeKind.AGENT, login), T0,
                    offer_expires_at=T0 + timedelta(minutes=5))


def test_accepting_an_offer_keeps_it_and_stops_its_timeout() -> None:
    accepted = c.accept_offer(offered_to("ann"), "ann", T0 + timedelta(seconds=30))
    assert (accepted.status, accepted.agent, accepted.offer_expires_at) == (Status.ASSIGNED, "ann", None)
    assert not c.offer_expired(accepted, T0 + timedelta(hours=1))


def test_declining_returns_it_to_the_team_queue_and_remembers_who_declined() -> None:
    declined = c.decline_offer(offered_to("ann"), "ann", T0)
    assert (declined.status, declined.assignee, declined.declined_by) == (Status.QUEUED, TEAM, ("ann",))
    again = c.decline_offer(offered_to("bob", declined), "bob", T0)
    assert again.declined_by == ("ann", "bob")  # an offer keeps who declined before
    taken = c.assign(again, Assignee(AssigneeKind.AGENT, "cy"), T0)
    assert taken.declined_by == ()  # a firm assignment forgets them


@pytest.mark.parametrize("case", ["someone_else", "already_accepted", "queued", "closed"])
def test_only_the_offered_agent_accepts_or_declines_a_pending_offer(case: str) -> None:
    conv = {"someone_else": offered_to("bob"), "already_accepted": c.accept_offer(offered_to("ann"), "ann", T0),
            "queued": c.assign(new(), TEAM, T0), "closed": c.close(offered_to("ann"), T0)}[case]
    for action in (c.accept_offer, c.decline_offer):
        with pytest.raises(TransitionError) as err:
            action(conv, "ann", T0)
        assert err.value.code == ("conversation_closed" if case == "closed" else "no_pending_offer")


def test_the_card_replaces_labels_fields_and_names_but_keeps_the_channels_when_it_has_none() -> None:
    conv = replace(c.open_conversation("c1", "t", "wa", "whatsapp", "u1", T0), customer_name="Dana",
                   customer_phone="+447700900123", labels=("old",))
    card = c.ContactSummary("k1", labels=("vip",), fields=(("tier", "gold"),))
    shown = c.with_contact(conv, card)
    assert (shown.contact_id, shown.labels, shown.contact_fields) == ("k1", ("vip",), (("tier", "gold"),))
    assert (shown.customer_name, shown.customer_phone) == ("Dana", "+447700900123")
    renamed = c.with_contact(shown, c.ContactSummary("k1", name="Dana Li", phone="+447700900999"))
    assert (renamed.customer_name, renamed.customer_phone, renamed.labels) == ("Dana Li", "+447700900999", ())
    assert c.with_contact(renamed, c.ContactSummary("k1", name="Dana Li", phone="+447700900999")) == renamed


def test_a_block_withdraws_an_offer_but_not_an_accepted_conversation() -> None:
    queued = c.enqueue(c.open_conversation("c1", "t", "wa", "whatsapp", "u1", T0), Assignee(AssigneeKind.TEAM, "s"),
                       T0)
    offered = c.assign(queued, Assignee(AssigneeKind.AGENT, "ann"), T0, offer_expires_at=T0 + timedelta(minutes=5))
    withdrawn = c.set_blocked(offered, True, T0)
    assert (withdrawn.status, withdrawn.agent, withdrawn.blocked) == (Status.QUEUED, None, True)
    assert c.queue_target(withdrawn) is None  # a blocked conversation waits for nobody
    accepted = c.agent_replied(offered, "ann", T0)
    kept = c.set_blocked(accepted, True, T0)
    assert (kept.status, kept.agent, kept.blocked) == (Status.ASSIGNED, "ann", True)
    unblocked = c.set_blocked(withdrawn, False, T0)
    assert c.queue_target(unblocked) == Assignee(AssigneeKind.TEAM, "s")
    with pytest.raises(TransitionError):
        c.set_blocked(c.close(unblocked, T0), True, T0)
