"""The conversations' indexes over the real database: every query the router asks of its conversations (the
sweep, the queue, the capacity audit, an agent's conversations, inbox pages, a customer's history, an identity's
conversations, the period figures) is served by an index (`explain`: IXSCAN, no COLLSCAN), every index serves one
of them, the partial ones hold only the conversations their queries look for, and a database of an earlier release
gets them with its retired indexes dropped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from query_plans import plan_stages
from sent_commands import SentCommands

from parley_common.auth import Principal, Role
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_router.adapters.capacity_audit import CapacityAudit
from parley_router.adapters.conversations import (
    CHANGED_AT,
    CONVERSATION_INDEXES,
    INBOX_INDEXES,
    RETIRED_INDEXES,
    ConversationRepository,
    to_doc,
)
from parley_router.domain.conversation import Assignee, AssigneeKind, Status, open_conversation
from parley_router.handlers.inbox import InboxFilter, filter_query, scope

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ANN = Assignee(AssigneeKind.AGENT, "ann")
# the conversations' indexes before their partial and reordered ones (the inbox orders were already there)
EARLIER_RELEASE = [
    [("tenant_id", ASCENDING), ("status", ASCENDING), ("blocked", ASCENDING), ("priority", DESCENDING),
     ("waiting_since", ASCENDING)],
    *INBOX_INDEXES,
    [("tenant_id", ASCENDING), ("channel_id", ASCENDING), ("external_user_id", ASCENDING), ("opened_at", DESCENDING)],
    [("status", ASCENDING), ("offer_expires_at", ASCENDING)],
    [("status", ASCENDING), ("snoozed_until", ASCENDING)],
    [("status", ASCENDING), ("bot_reply_due", ASCENDING)],
    [("tenant_id", ASCENDING), ("assignee_agent", ASCENDING), ("status", ASCENDING)],
    [("tenant_id", ASCENDING), ("contact_id", ASCENDING), ("opened_at", DESCENDING)],
    [("tenant_id", ASCENDING), ("opened_at", ASCENDING)],
    [("tenant_id", ASCENDING), ("closed_at", ASCENDING)],
]


def conversations() -> list[dict[str, Any]]:
    """One conversation in each state the queries look for, and one of each that a partial index leaves out."""
    def conv(name: str, **fields: Any) -> dict[str, Any]:
        opened = open_conversation(name, "acme", "wa-1", "whatsapp", f"user-{name}", NOW - timedelta(hours=1))
        return {**to_doc(replace(opened, **fields)), CHANGED_AT: NOW - timedelta(minutes=len(name))}
    return [
        conv("offered", status=Status.ASSIGNED, assignee=ANN, team_id="sales", offer_expires_at=NOW - timedelta(1)),
        conv("accepted", status=Status.ASSIGNED, assignee=ANN, team_id="sales", contact_id="k1"),
        conv("snoozed", status=Status.SNOOZED, assignee=ANN, snoozed_until=NOW - timedelta(seconds=1)),
        conv("bot-due", status=Status.BOT, assignee=Assignee(AssigneeKind.BOT, "b"), bot_reply_due=NOW),
        conv("bot-answered", status=Status.BOT, assignee=Assignee(AssigneeKind.BOT, "b")),
        conv("queued", team_id="sales"),
        conv("closed", status=Status.CLOSED, assignee=ANN, closed_at=NOW - timedelta(minutes=5), contact_id="k1"),
    ]


async def test_every_query_on_the_conversations_is_served_by_an_index_and_every_index_serves_one(
        mongo: Any, infra_settings: InfraSettings, redis: Any) -> None:
    name = infra_settings.database_name("router")
    for keys in EARLIER_RELEASE:  # a database of the earlier release, with its conversations
        await mongo[name]["conversations"].create_index(keys)
    await mongo[name]["conversations"].insert_many(conversations())
    queries: SentCommands[dict[str, Any]] = SentCommands(  # the reads sent to the conversations collection, as sent
        lambda event: dict(event.command) if event.command_name in ("find", "distinct")
        and event.command[event.command_name] == "conversations" else None)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True,
                                                                event_listeners=[queries])
    try:
        db = client[name]
        repo = ConversationRepository(db)
        await repo.ensure_indexes()

        indexes = await db["conversations"].index_information()
        assert set(indexes) == {"_id_", *(model.document["name"] for model in CONVERSATION_INDEXES)}
        assert not set(RETIRED_INDEXES) & set(indexes)
        holding = {index: sorted([doc["_id"] async for doc in db["conversations"].find({}, hint=index)])
                   for index, spec in indexes.items() if "partialFilterExpression" in spec}
        assert holding == {"due_offer_expires_at": ["offered"],
                           "due_snoozed_until": ["snoozed"], "due_bot_reply_due": ["bot-due"],
                           "history": ["accepted", "closed"], "closed": ["closed"]}
        queries.sent.clear()  # from here, the router's own queries

        assert sorted(conv.id for conv in await repo.due(NOW)) == ["bot-due", "offered", "snoozed"]
        assert [conv.id for conv in await repo.queued("acme", 50)] == ["queued"]
        assert [conv.id for conv in await repo.active_of_agent("acme", "ann")] == ["accepted", "offered", "snoozed"]
        audit = CapacityAudit(redis, infra_settings.redis_prefix(), db)
        assert {conv for convs in (await audit.held("acme")).values() for conv in convs} == {
            "accepted", "offered", "snoozed"}
        # stored in the last 7 minutes: those of the 7th minute in two windows of 10 s, the rest in the open third
        assert await audit.changed_since("acme", NOW - timedelta(minutes=7), NOW - timedelta(minutes=6.5), 3) == {
            "offered": ("ann", "whatsapp"), "snoozed": ("ann", "whatsapp"), "bot-due": None, "queued": None,
            "closed": None}
        assert await audit.holders_of("acme", ["accepted", "queued", "gone"]) == {
            "accepted": ("ann", "whatsapp"), "queued": None, "gone": None}
        assert [conv.id for conv in await repo.of_contact("acme", "k1", 20)] == ["closed", "accepted"]
        key = ConversationKey("acme", "wa-1", "user-accepted")
        assert await repo.last_agent_for(key) == "ann"
        assert not await repo.applied(key, "a-command")
        assert list(await repo.of_identities([key])) == [key]
        within = {"$gte": NOW - timedelta(days=1), "$lt": NOW}  # the supervisors' figures of a period
        assert len([conv async for batch in repo.stream({"tenant_id": "acme", "opened_at": within},
                                                        [("opened_at", 1)], 1000) for conv in batch]) == 7
        assert [conv.id async for batch in repo.stream({"tenant_id": "acme", "closed_at": within},
                                                       [("closed_at", 1)], 1000) for conv in batch] == ["closed"]
        manager = Principal("acme", "boss", frozenset({Role.MANAGER}))
        agent = Principal("acme", "ann", frozenset({Role.AGENT}))
        for principal in (manager, agent):  # the default inbox and a status tab, each as its caller's scope
            for status in (None, Status.ASSIGNED):
                query = filter_query(scope(principal, frozenset({"sales"})), InboxFilter(status=status))
                assert await repo.find_latest(query, 50, NOW)

        served: set[str] = set()
        for sent in queries.sent:
            kind = "find" if "find" in sent else "distinct"
            asked = {key: sent[key] for key in (kind, "filter", "sort", "limit", "key", "query") if key in sent}
            plan = (await db.command("explain", asked))["queryPlanner"]["winningPlan"]
            scans = plan_stages(plan)
            assert "COLLSCAN" not in {stage for stage, _ in scans}, (sent, plan)
            served |= {index for stage, index in scans if stage == "IXSCAN" and index}
        assert served - {"_id_"} == set(indexes) - {"_id_"}
    finally:
        await client.close()
