"""Ingest's cache round trips are shared by the webhooks in flight (issue 17): the reads made in one event-loop
turn are one `MGET`, the script calls one pipeline (parley_common.shared_scripts, tested in tests/common)."""

from __future__ import annotations

import asyncio

from counted_redis import CountedRedis

from parley_common.settings import InfraSettings
from parley_common.shared_scripts import ScriptCall
from parley_ingest.adapters.cache import SharedCache

SET_EACH = "for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1]) end return #KEYS"


async def test_the_reads_of_one_turn_are_one_mget_and_its_script_calls_one_pipeline(
        counted_cache: CountedRedis, infra_settings: InfraSettings) -> None:
    cache, sent = SharedCache(counted_cache.client), counted_cache.sent
    key = f"{infra_settings.redis_prefix()}shared:{{}}".format
    set_each = cache.script(SET_EACH)
    await cache.call(ScriptCall(set_each, [key(0)], ["warm"]))  # connects and loads the script: not counted
    sent.clear()
    await asyncio.gather(*(cache.call(ScriptCall(set_each, [key(n), key(100 + n)], [f"v{n}"])) for n in range(20)))
    answers = await asyncio.gather(*(cache.get([key(n), key(200 + n), key(0)]) for n in range(20)))
    assert answers == [[f"v{n}", None, "v0"] for n in range(20)]
    assert sent == ["EVALSHA", "MGET"]
