"""Ingest's cache round trips are shared by the webhooks in flight (issue 17): the reads made in one event-loop
turn are one `MGET`, the script calls one pipeline; each caller gets its own answer or its own error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from parley_common.round_trips import cache_command
from parley_common.settings import InfraSettings
from parley_ingest.adapters.cache import ScriptCall, SharedCache

SET_EACH = "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end return #KEYS"
INCR_EACH = "for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end return #KEYS"
SENT: list[str] = []


class CountedConnection(Connection):
    """A real connection that notes each send (a pipeline or a script call is one) by its first command."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        SENT.append(cache_command(command))
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def cache(infra_settings: InfraSettings, redis: Redis) -> AsyncIterator[SharedCache]:
    client = Redis.from_url(infra_settings.redis_url, decode_responses=True, connection_class=CountedConnection)
    yield SharedCache(client)
    await client.aclose()  # the `redis` fixture deletes the test's keys


async def test_the_reads_of_one_turn_are_one_mget_and_its_script_calls_one_pipeline(
        cache: SharedCache, infra_settings: InfraSettings) -> None:
    key = f"{infra_settings.redis_prefix()}shared:{{}}".format
    set_each = cache.script(SET_EACH)
    await cache.call(ScriptCall(set_each, [key(0)], ["warm"]))  # connects and loads the script: not counted
    SENT.clear()
    await asyncio.gather(*(cache.call(ScriptCall(set_each, [key(n), key(100 + n)], [f"v{n}"])) for n in range(20)))
    answers = await asyncio.gather(*(cache.get([key(n), key(200 + n), key(0)]) for n in range(20)))
    assert answers == [[f"v{n}", None, "v0"] for n in range(20)]
    assert SENT == ["EVALSHA", "MGET"]


async def test_a_failed_script_call_fails_only_its_caller_and_an_unknown_script_is_loaded_once(
        cache: SharedCache, infra_settings: InfraSettings, redis: Redis) -> None:
    key = f"{infra_settings.redis_prefix()}shared:{{}}".format
    await redis.set(key("text"), "not a number")
    await redis.script_flush()  # a restarted Redis: neither script is known
    outcomes = await asyncio.gather(
        cache.call(ScriptCall(cache.script(INCR_EACH), [key("counter")], [])),
        cache.call(ScriptCall(cache.script(INCR_EACH), [key("text")], [])),  # INCR of a string: an error
        cache.call(ScriptCall(cache.script(SET_EACH), [key("plain")], ["set"])), return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ResponseError)
    assert await redis.mget([key("counter"), key("plain")]) == ["1", "set"]


async def test_a_call_alone_in_its_turn_answers_as_in_a_pipeline(cache: SharedCache, infra_settings: InfraSettings,
                                                                  redis: Redis) -> None:
    """A lone call is sent without a pipeline (less client work for a known customer's marks): Redis having
    forgotten its script, it is loaded and the call made again; its own error is its caller's alone."""
    key = f"{infra_settings.redis_prefix()}shared:{{}}".format
    await redis.set(key("text"), "not a number")
    await redis.script_flush()
    await cache.get([key("lone")])  # connects: not counted
    SENT.clear()
    await cache.call(ScriptCall(cache.script(INCR_EACH), [key("lone")], []))
    assert SENT == ["EVALSHA", "SCRIPT", "EVALSHA"]
    with pytest.raises(ResponseError):
        await cache.call(ScriptCall(cache.script(INCR_EACH), [key("text")], []))
    await cache.call(ScriptCall(cache.script(INCR_EACH), [key("lone")], []))
    assert await redis.get(key("lone")) == "2"
