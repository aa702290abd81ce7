"""Redis is a cache: outbound's projections lost with it are rebuilt from the topics (the latest facts, not the
last replayed) and its database (what the topics no longer keep), and a rebuild the cache outlived marks nothing
(the restarted cache is rebuilt again)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from outbound_helpers import TENANT, cache_restarts_empty, customer_message, eventually, publisher, window_open
from redis.asyncio import Redis

from parley_common.clock import SystemClock
from parley_common.events.common import ChannelType, SenderKind
from parley_common.events.conversations import AgentChanged, Assignee, ConversationChanged
from parley_common.events.inbound import MarketingPreferenceChanged
from parley_common.ids import ConversationKey
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_common.topics import AGENTS_EVENTS, CONVERSATIONS_EVENTS, INBOUND_MESSAGES, INBOUND_PREFERENCES
from parley_common.visibility_store import VisibilityProjection
from parley_outbound.adapters.audience_repo import AudienceRepository
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.preferences_repo import MarketingPreferenceRepository
from parley_outbound.adapters.projection_marker import ProjectionMarker
from parley_outbound.adapters.window_store import WindowStore
from parley_outbound.domain.threads import held_by_another_agent
from parley_outbound.handlers.projection_rebuild import ProjectionRebuild

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def cache(module_infra: InfraSettings) -> AsyncIterator[Redis]:
    """The module's cache (in the module's event loop, like its app)."""
    client = redis_client(module_infra.redis_url)
    yield client
    await client.aclose()


async def test_the_lost_window_is_rebuilt_with_the_latest_facts_and_a_reply_goes_out_again(
        app: FastAPI, client: httpx.AsyncClient, module_infra: InfraSettings, cache: Redis) -> None:
    user = f"rb-{uuid.uuid4().hex[:8]}"
    newer = customer_message("wa-main", "whatsapp", user, timedelta(minutes=5))
    older = customer_message("wa-main", "whatsapp", user, timedelta(hours=30))  # arrives last, changes nothing
    for event in (newer, older):
        await publisher(app).publish(event, INBOUND_MESSAGES)
    stop = MarketingPreferenceChanged(
        occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-pref", channel_id="wa-main",
        external_user_id=user, channel_type="whatsapp", opted_out=True, provider_timestamp=datetime.now(UTC))
    await publisher(app).publish(stop, INBOUND_PREFERENCES)
    await window_open(client, "wa-main", user)

    async def opted_out() -> bool:
        return bool((await client.get(f"/v1/windows/wa-main/{user}")).json()["marketing_opted_out"])

    await eventually(opted_out)
    await cache_restarts_empty(cache, module_infra)

    answers: list[int] = []

    async def rebuilt() -> bool:
        response = await client.get(f"/v1/windows/wa-main/{user}")
        answers.append(response.status_code)
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "window_facts_rebuilding", response.text
            assert response.headers["Retry-After"]
            return False
        assert response.status_code == 200, response.text
        return True

    await eventually(rebuilt)
    window = (await client.get(f"/v1/windows/wa-main/{user}")).json()
    assert window["open"] and window["marketing_opted_out"], window
    assert datetime.fromisoformat(window["last_customer_message_at"]) == newer.provider_timestamp
    reply = await client.post("/v1/messages", json={"channel_id": "wa-main", "recipient": {"external_user_id": user},
                                                    "content": {"kind": "text", "text": "still inside"}})
    assert reply.status_code == 202, reply.text
    assert set(answers) <= {200, 503}, answers


async def test_after_the_rebuild_an_agent_is_refused_a_thread_another_agent_holds_as_before_the_wipe(
        app: FastAPI, client: httpx.AsyncClient, module_infra: InfraSettings, cache: Redis) -> None:
    user = f"rb-held-{uuid.uuid4().hex[:8]}"  # dana (the caller) sees it through her team; lee holds it
    await publisher(app).publish(AgentChanged(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-a",
                                              login="agent.dana", teams=("support",)), AGENTS_EVENTS)
    await publisher(app).publish(customer_message("tg-bot", "telegram", user, timedelta(minutes=2)), INBOUND_MESSAGES)
    now = datetime.now(UTC)
    for holder, at in (("agent.lee", now), ("agent.dana", now - timedelta(minutes=1))):  # the older one comes last
        await publisher(app).publish(ConversationChanged(
            occurred_at=now, tenant_id=TENANT, correlation_id="c-t", channel_id="tg-bot", external_user_id=user,
            conversation_id=f"conv-{user}", change="assigned", status="assigned",
            assignee=Assignee(kind="agent", id=holder), team_id="support", changed_at=at), CONVERSATIONS_EVENTS)
    body = {"channel_id": "tg-bot", "recipient": {"external_user_id": user}, "content": {"kind": "text", "text": "x"}}

    async def refused_as_held(wiped: bool = False) -> bool:
        response = await client.post("/v1/messages", json=body)
        code = response.json()["error"]["code"] if response.status_code >= 400 else None
        if wiped:  # until the rebuild only "not yet", then the refusal again: never sent into lee's thread
            assert code in ("window_facts_rebuilding", "thread_held_by_another_agent"), response.text
        return code == "thread_held_by_another_agent"

    await window_open(client, "tg-bot", user)
    await eventually(refused_as_held)  # the thread facts projected
    await cache_restarts_empty(cache, module_infra)
    await eventually(lambda: refused_as_held(wiped=True))
    window = (await client.get(f"/v1/windows/tg-bot/{user}")).json()
    assert window["open"], window


async def test_a_rebuild_the_cache_outlived_marks_nothing_and_one_replica_rebuilds_at_a_time(cache: Redis) -> None:
    prefix = f"lease-{uuid.uuid4().hex[:8]}:"  # a deployment of its own: the module's app does not see it
    marker = ProjectionMarker(cache, prefix)
    assert await marker.take_lease("first", 30)
    assert not await marker.take_lease("second", 30)  # another replica: it waits for the marker instead
    assert await marker.renew_lease("first", 30)
    async for key in cache.scan_iter(match=f"{prefix}*"):  # the cache restarts empty during the rebuild
        await cache.delete(key)
    assert not await marker.finish("first")  # what it wrote is gone: not marked
    assert not await marker.ready()
    assert await marker.take_lease("second", 30)
    await marker.release_lease("first")  # not its lease any more: nothing happens
    assert await marker.finish("second")
    assert await marker.ready()
    await cache.delete(marker.key)


async def nothing_kept(topics: list[str], batch: int) -> AsyncIterator[list[Any]]:
    """Topics whose retention dropped every record."""
    for _ in ():
        yield []


async def rebuild_from_the_database(db: Any, cache: Redis, prefix: str, infra: InfraSettings) -> bool:
    return await ProjectionRebuild(
        redis=cache, prefix=prefix, namespace=infra.namespace, audience=AudienceRepository(db),
        preferences=MarketingPreferenceRepository(db), messages=MessageRepository(db),
        owners=VisibilityProjection(db), clock=SystemClock(), replay=nothing_kept, check_seconds=3600).rebuild_once()


async def test_a_thread_held_since_before_the_topic_is_restored_from_the_database(
        module_infra: InfraSettings, cache: Redis) -> None:
    prefix = f"threads-{uuid.uuid4().hex[:8]}:"  # a deployment of its own
    mongo = mongo_client(module_infra.mongo_uri, "parley-tests")
    db = mongo[f"parley_outbound_{prefix.rstrip(':')}"]
    key, held_since = ConversationKey(TENANT, "tg-bot", "held-long"), datetime.now(UTC) - timedelta(days=10)
    try:
        await VisibilityProjection(db).on_conversations_changed([ConversationChanged(
            occurred_at=held_since, tenant_id=TENANT, correlation_id="c-t", channel_id=key.channel_id,
            external_user_id=key.external_user_id, conversation_id="conv-long", change="assigned",
            status="assigned", assignee=Assignee(kind="agent", id="agent.lee"), team_id="support",
            changed_at=held_since)])
        assert await rebuild_from_the_database(db, cache, prefix, module_infra)
        [(_, thread)] = await WindowStore(cache, prefix).views([key])
        assert held_by_another_agent(ChannelType.TELEGRAM, SenderKind.HUMAN, "agent.dana", thread), thread
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
        async for stale in cache.scan_iter(match=f"{prefix}*"):
            await cache.delete(stale)


async def test_an_opt_out_older_than_the_topic_is_restored_from_the_database(
        module_infra: InfraSettings, cache: Redis) -> None:
    prefix = f"prefs-{uuid.uuid4().hex[:8]}:"  # a deployment of its own
    mongo = mongo_client(module_infra.mongo_uri, "parley-tests")
    db = mongo[f"parley_outbound_{prefix.rstrip(':')}"]
    try:
        preferences, key = MarketingPreferenceRepository(db), ConversationKey(TENANT, "wa-main", "old-stop")
        stopped = datetime.now(UTC) - timedelta(days=40)
        await preferences.record(key, True, stopped)
        await preferences.record(key, False, stopped - timedelta(days=1))  # a late webhook of an earlier resume
        assert await rebuild_from_the_database(db, cache, prefix, module_infra)
        facts = await WindowStore(cache, prefix).facts(key)
        assert facts.marketing_opted_out
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
        async for stale in cache.scan_iter(match=f"{prefix}*"):
            await cache.delete(stale)
