"""Ingest's Redis round trips, shared by the webhooks in flight (parley_common.batching): the reads made in one
event-loop turn — de-duplication marks and cached identity ranks, of one webhook or of many — are one `MGET`;
the script calls made in one turn (marking what was published, caching ranks) are one pipeline, or the call itself
when it is alone. Each caller gets its own answer and decides what a failure means for it (adapters/dedup.py,
adapters/identities.py)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from parley_common.batching import TickBatcher


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: Script
    keys: list[str]
    args: list[str | int]


class SharedCache:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reads: TickBatcher[list[str], list[str | None]] = TickBatcher(self._get_many)
        self._calls: TickBatcher[ScriptCall, None] = TickBatcher(self._call_many)

    def script(self, source: str) -> Script:
        return Script(source, self._redis.register_script(source).sha)

    async def get(self, keys: list[str]) -> list[str | None]:
        """The value of each key (the client decodes answers: parley_common.redis), in order."""
        return await self._reads.submit(keys) if keys else []

    async def call(self, call: ScriptCall) -> None:
        await self._calls.submit(call)

    async def _get_many(self, reads: list[list[str]]) -> list[list[str | None]]:
        wanted = list(dict.fromkeys(key for keys in reads for key in keys))
        found = {key: None if value is None else str(value)  # decoded already: str() only types it
                 for key, value in zip(wanted, await self._redis.mget(wanted), strict=True)}
        return [[found[key] for key in keys] for keys in reads]

    async def _call_many(self, calls: list[ScriptCall]) -> list[BaseException | None]:
        answers = await self._pipelined(calls)
        unknown = {call.script for call, answer in zip(calls, answers, strict=True)
                   if isinstance(answer, NoScriptError)}
        if unknown:  # a new or restarted Redis: load the scripts once, then call those again
            for script in unknown:
                await self._redis.script_load(script.source)
            again = iter(await self._pipelined([call for call in calls if call.script in unknown]))
            answers = [next(again) if call.script in unknown else answer for call, answer in zip(calls, answers,
                                                                                                 strict=True)]
        return [answer if isinstance(answer, BaseException) else None for answer in answers]

    async def _pipelined(self, calls: list[ScriptCall]) -> list[object]:
        """Each call by its SHA, all in one round trip; a call's error is its answer. A call alone in its turn (a
        known customer's de-dup marks) is sent as itself: a pipeline of one costs the client more than the call."""
        if len(calls) == 1:
            call = calls[0]
            try:
                return [await self._redis.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys,
                                                          *call.args)]
            except ResponseError as error:  # the call's own error (NOSCRIPT among them), as a pipeline answers it
                return [error]
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
