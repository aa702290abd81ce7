"""The visibility projection stores a batch of conversation events with one bulk write (issue 17): per
conversation key the batch's last event decides, as one event at a time did; other keys are left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from parley_common.events.conversations import Assignee, ConversationChanged
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_common.visibility import Owner
from parley_common.visibility_store import VisibilityProjection

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def change(user: str, step: int, team: str, agent: str | None) -> ConversationChanged:
    return ConversationChanged(occurred_at=NOW, tenant_id="acme", correlation_id="c", channel_id="wa",
                               external_user_id=user, conversation_id=f"conv-{user}", change="assigned",
                               status="assigned", assignee=Assignee(kind="agent", id=agent) if agent else None,
                               team_id=team, changed_at=NOW + timedelta(seconds=step))


async def test_a_batch_keeps_each_keys_last_state(mongo: AsyncMongoClient[Any], infra_settings: InfraSettings) -> None:
    projection = VisibilityProjection(mongo[infra_settings.database_name("visibility")])
    await projection.on_conversations_changed([change("u1", 0, "sales", None), change("u2", 0, "vip", "bo")])
    await projection.on_conversations_changed([
        change("u1", 1, "sales", "ana"), change("u1", 2, "support", "cy"), change("u3", 1, "vip", None)])

    keys = [ConversationKey("acme", "wa", user) for user in ("u1", "u2", "u3", "u4")]
    assert await projection.owners(keys) == [Owner("support", "cy"), Owner("vip", "bo"), Owner("vip", None), None]
