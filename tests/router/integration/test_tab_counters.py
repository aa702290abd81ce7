"""Tab counters on the real database: random transitions stored with redelivered inserts and concurrent saves
of one read leave counters equal to a recount and to the tabs counted by query; the repair sets right a counter
that missed a change, and builds the counters of conversations stored before they existed."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import timedelta

from parley_common.auth import Principal, Role
from parley_router.adapters.conversations import StaleVersion
from parley_router.domain.conversation import Assignee, AssigneeKind, Conversation, Status
from parley_router.domain.tab_counts import bucket_of
from parley_router.handlers.http_conversations import tab_counts

from .conftest import T0, Router

PRINCIPALS = [(Principal("acme", "ann", frozenset({Role.AGENT})), frozenset({"t1"})),
              (Principal("acme", "bob", frozenset({Role.AGENT})), frozenset[str]()),
              (Principal("acme", "boss", frozenset({Role.MANAGER})), frozenset[str]())]


def conversation(index: int) -> Conversation:
    return Conversation(id=f"tc-{index}", tenant_id="acme", channel_id="wa-1", channel_type="whatsapp",
                        external_user_id=f"u{index}", status=Status.QUEUED, opened_at=T0, last_activity_at=T0,
                        unanswered=True)


def random_state(rng: random.Random, conv: Conversation) -> Conversation:
    agent = rng.choice([None, "ann", "bob"])
    return replace(conv, status=rng.choice(list(Status)), team_id=rng.choice([None, "t1", "t2"]),
                   assignee=Assignee(AssigneeKind.AGENT, agent) if agent else None, archived=rng.random() < 0.2,
                   blocked=rng.random() < 0.1, unanswered=rng.random() < 0.5)


async def assert_counters_tell_the_truth(router: Router) -> None:
    counters = router.engine.stores.conversations.counters
    kept = {bucket: counted.n for bucket, counted in (await counters.of_tenant("acme")).items() if counted.n}
    assert kept == (await counters.recount("acme"))[0]
    for principal, teams in PRINCIPALS:  # summed from counters == counted by query (the per-channel path)
        assert await tab_counts(router.engine, principal, teams) == await tab_counts(
            router.engine, principal, teams, channels=["wa-1"])


async def test_random_transitions_with_redeliveries_and_races_keep_counters_exact(router: Router) -> None:
    repo = router.engine.stores.conversations
    rng = random.Random(15)
    convs = [conversation(index) for index in range(10)]
    await asyncio.gather(*(repo.insert(conv) for conv in convs))
    await asyncio.gather(*(repo.insert(conv) for conv in convs[:4]))  # redelivered: written before, not counted
    stale = 0
    for _ in range(25):
        reads = [current for conv in rng.sample(convs, 4) if (current := await repo.get("acme", conv.id))]
        # two replicas save over the same read at once: one wins; an older read loses
        attempts = [repo.save(random_state(rng, read), read) for read in reads for _ in range(2)]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        stale += sum(isinstance(outcome, StaleVersion) for outcome in outcomes)
        assert all(isinstance(outcome, Conversation | StaleVersion) for outcome in outcomes)
    assert stale >= 25 * 4 // 2  # the races happened
    await assert_counters_tell_the_truth(router)


async def test_repair_sets_a_missed_change_right_after_two_checks_and_builds_missing_counters(
        router: Router, mongo: object) -> None:
    repo = router.engine.stores.conversations
    upkeep = router.app.state.upkeep
    convs = [conversation(index) for index in range(5)]
    await asyncio.gather(*(repo.insert(conv) for conv in convs))
    await repo.counters.apply({bucket_of(convs[0]): 2})  # as if two saves were added and their writes lost
    assert await upkeep.repair_tab_counts() == 0  # once could be a change in flight
    assert await upkeep.repair_tab_counts() == 1
    await assert_counters_tell_the_truth(router)

    await router.engine.stores.conversations.counters._counters.drop()  # stored before counters existed
    assert await upkeep.repair_tab_counts() == 1
    await assert_counters_tell_the_truth(router)
    assert await upkeep.repair_tab_counts() == 0


async def test_a_first_page_starts_at_the_latest_arrival_and_still_shows_what_was_active_since(
        router: Router) -> None:
    repo = router.engine.stores.conversations
    arrived = [replace(conversation(index), last_activity_at=T0 - timedelta(hours=2, minutes=index))
               for index in range(60)]
    await asyncio.gather(*(repo.insert(conv) for conv in arrived))
    assert await repo.counters.latest_arrival("acme", "queued") == T0 - timedelta(hours=2)
    # three get a message later (same bucket: the counters are not written), one of them now
    for index, minutes in ((30, 50), (40, 20), (50, 0)):
        current = await repo.get("acme", arrived[index].id)
        assert current is not None
        await repo.save(replace(current, last_activity_at=T0 - timedelta(minutes=minutes)), current)

    page = await router.ok("GET", "/v1/conversations", params={"status": "queued", "limit": 5})
    assert [item["id"] for item in page["items"]] == ["tc-50", "tc-40", "tc-30", "tc-0", "tc-1"]
    after = await router.ok("GET", "/v1/conversations",
                            params={"status": "queued", "limit": 5, "cursor": page["next_cursor"]})
    assert [item["id"] for item in after["items"]] == ["tc-2", "tc-3", "tc-4", "tc-5", "tc-6"]
