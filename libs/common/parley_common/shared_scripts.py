"""Redis script calls shared by the callers of one event-loop turn (parley_common.batching): the calls made in one
turn — by the webhooks in flight, by a batch's offers — are one pipeline, or the call itself when it is alone. Each
caller gets its own answer or its own error; a script Redis does not know (a new or restarted server) is loaded
once and its calls made again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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


class SharedScripts:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._calls: TickBatcher[ScriptCall, Any] = TickBatcher(self._call_many)

    def script(self, source: str) -> Script:
        return Script(source, self._redis.register_script(source).sha)

    async def call(self, call: ScriptCall) -> Any:
        """The script's answer (raises the call's own error)."""
        return await self._calls.submit(call)

    async def _call_many(self, calls: list[ScriptCall]) -> list[Any]:
        answers = await self._pipelined(calls)
        unknown = {call.script for call, answer in zip(calls, answers, strict=True)
                   if isinstance(answer, NoScriptError)}
        if unknown:  # a new or restarted Redis: load the scripts once, then call those again
            for script in unknown:
                await self._redis.script_load(script.source)
            again = iter(await self._pipelined([call for call in calls if call.script in unknown]))
            answers = [next(again) if call.script in unknown else answer for call, answer in zip(calls, answers,
                                                                                                 strict=True)]
        return answers

    async def _pipelined(self, calls: list[ScriptCall]) -> list[Any]:
        """Each call by its SHA, all in one round trip; a call's error is its answer. A call alone in its turn is
        sent as itself: a pipeline of one costs the client more than the call."""
        if len(calls) == 1:
            call = calls[0]
            try:
                command: Callable[..., Awaitable[Any]] = self._redis.execute_command
                return [await command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)]
            except ResponseError as error:  # the call's own error (NOSCRIPT among them), as a pipeline answers it
                return [error]
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipe.execute(raise_on_error=False))
