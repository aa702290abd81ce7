"""Script calls made in one event-loop turn are one pipeline (parley_common.shared_scripts); each caller gets its own
answer or its own error, and a script Redis forgot is loaded once."""

from __future__ import annotations

import asyncio

import pytest
from counted_redis import CountedRedis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from parley_common.settings import InfraSettings
from parley_common.shared_scripts import ScriptCall, SharedScripts

SET_EACH = "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end return #KEYS"
INCR_EACH = "for i = 1, #KEYS do redis.call('INCR', KEYS[i]) end return redis.call('GET', KEYS[1])"


@pytest.fixture
def scripts(counted_cache: CountedRedis) -> SharedScripts:
    return SharedScripts(counted_cache.client)


@pytest.fixture
def sent(counted_cache: CountedRedis) -> list[str]:
    return counted_cache.sent


async def test_the_calls_of_one_turn_are_one_pipeline_and_each_gets_its_answer(
        scripts: SharedScripts, infra_settings: InfraSettings, sent: list[str]) -> None:
    key = f"{infra_settings.redis_prefix()}scripts:{{}}".format
    incr_each = scripts.script(INCR_EACH)
    await scripts.call(ScriptCall(incr_each, [key("warm")], []))  # connects and loads the script: not counted
    sent.clear()
    answers = await asyncio.gather(*(scripts.call(ScriptCall(incr_each, [key(n % 3)], [])) for n in range(9)))
    assert sorted(answers) == ["1", "1", "1", "2", "2", "2", "3", "3", "3"]
    assert sent == ["EVALSHA"]


async def test_a_failed_call_fails_only_its_caller_and_an_unknown_script_is_loaded_once(
        scripts: SharedScripts, infra_settings: InfraSettings, redis: Redis) -> None:
    key = f"{infra_settings.redis_prefix()}scripts:{{}}".format
    await redis.set(key("text"), "not a number")
    await redis.script_flush()  # a restarted Redis: neither script is known
    outcomes = await asyncio.gather(
        scripts.call(ScriptCall(scripts.script(INCR_EACH), [key("counter")], [])),
        scripts.call(ScriptCall(scripts.script(INCR_EACH), [key("text")], [])),  # INCR of a string: an error
        scripts.call(ScriptCall(scripts.script(SET_EACH), [key("plain")], ["set"])), return_exceptions=True)
    assert outcomes[0] == "1" and outcomes[2] == 1
    assert isinstance(outcomes[1], ResponseError)
    assert await redis.mget([key("counter"), key("plain")]) == ["1", "set"]


async def test_a_call_alone_in_its_turn_answers_as_in_a_pipeline(
        scripts: SharedScripts, infra_settings: InfraSettings, redis: Redis, sent: list[str]) -> None:
    """A lone call is sent without a pipeline (less client work): Redis having forgotten its script, it is loaded
    and the call made again; its own error is its caller's alone."""
    key = f"{infra_settings.redis_prefix()}scripts:{{}}".format
    await redis.set(key("text"), "not a number")
    await scripts.call(ScriptCall(scripts.script(SET_EACH), [key("warm")], ["connects"]))
    await redis.script_flush()
    sent.clear()
    assert await scripts.call(ScriptCall(scripts.script(INCR_EACH), [key("lone")], [])) == "1"
    assert sent == ["EVALSHA", "SCRIPT", "EVALSHA"]
    with pytest.raises(ResponseError):
        await scripts.call(ScriptCall(scripts.script(INCR_EACH), [key("text")], []))
    assert await scripts.call(ScriptCall(scripts.script(INCR_EACH), [key("lone")], [])) == "2"
