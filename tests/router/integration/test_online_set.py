"""The per-tenant set of agents believed online (real Redis): who is online now, whose presence expired,
and the compare-and-remove that keeps an agent who came back."""

from __future__ import annotations

import asyncio
from typing import Any

from parley_common.settings import InfraSettings
from parley_router.adapters.presence import PresenceStore
from parley_router.domain.assignment import Presence


async def test_online_logins_and_expired_logins(infra_settings: InfraSettings, redis: Any) -> None:
    store = PresenceStore(redis, infra_settings.redis_prefix(), ttl_seconds=60)
    await store.heartbeat("acme", "ann", Presence.ONLINE)
    await store.heartbeat("acme", "bob", Presence.AWAY)
    await store.heartbeat("acme", "cid", Presence.ONLINE)
    await store.heartbeat("other", "dan", Presence.ONLINE)
    assert await store.online_logins("acme") == {"ann", "cid"}  # away is believed online, not offered work
    assert await store.online_logins("other") == {"dan"}

    assert await store.heartbeat("acme", "cid", Presence.OFFLINE) is Presence.ONLINE
    assert await store.online_logins("acme") == {"ann"}
    assert await store.expired_logins("acme") == []  # an explicit offline leaves the set at once

    await redis.pexpire(f"{infra_settings.redis_prefix()}router:presence:acme:ann", 1)
    await asyncio.sleep(0.05)
    assert await store.expired_logins("acme") == ["ann"]
    assert await store.online_logins("acme") == set()
    assert set(await store.tenants_with_online_agents()) == {"acme", "other"}

    await store.heartbeat("acme", "ann", Presence.ONLINE)  # came back before the offline check removed her
    assert await store.forget_expired("acme", ["ann"]) == []
    assert await store.online_logins("acme") == {"ann"}
    await redis.delete(f"{infra_settings.redis_prefix()}router:presence:acme:ann")
    assert await store.forget_expired("acme", ["ann"]) == ["ann"]
    assert await store.expired_logins("acme") == []
