"""Ingest's cache round trips are shared by the webhooks in flight (issue 17): the reads made in one event-loop
turn are one `MGET`, the script calls one pipeline (parley_common.shared_scripts, tested in tests/common)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from counted_redis import counted_redis
from redis.asyncio import Redis

from parley_common.settings import InfraSettings
from parley_common.shared_scripts import ScriptCall
from parley_ingest.adapters.cache import SharedCache

SET_EACH = "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end return #KEYS"


@pytest.fixture
def sent() -> list[str]:
    return []


@pytest.fixture
async def cache(infra_settings: InfraSettings, redis: Redis, sent: list[str]) -> AsyncIterator[SharedCache]:
    client = counted_redis(infra_settings.redis_url, sent)
    yield SharedCache(client)
    await client.aclose()  # the `redis` fixture deletes the test's keys


async def test_the_reads_of_one_turn_are_one_mget_and_its_script_calls_one_pipeline(
        cache: SharedCache, infra_settings: InfraSettings, sent: list[str]) -> None:
    key = f"{infra_settings.redis_prefix()}shared:{{}}".format
    set_each = cache.script(SET_EACH)
    await cache.call(ScriptCall(set_each, [key(0)], ["warm"]))  # connects and loads the script: not counted
    sent.clear()
    await asyncio.gather(*(cache.call(ScriptCall(set_each, [key(n), key(100 + n)], [f"v{n}"])) for n in range(20)))
    answers = await asyncio.gather(*(cache.get([key(n), key(200 + n), key(0)]) for n in range(20)))
    assert answers == [[f"v{n}", None, "v0"] for n in range(20)]
    assert sent == ["EVALSHA", "MGET"]
