"""Which key each customer identifier stands for, per channel, in Redis (ingest's own store; no expiry).

One script call per claim, atomically: the oldest key any of its identifiers already stands for, else the claim's
preferred key; every identifier of the claim is then recorded under that key. A claim that links identifiers
known under two keys (a customer seen by phone only, later by BSUID only, then by both) joins them from then on:
later events use the older key; the events already published under the younger one stay where they are. The
calls of one webhook travel in one pipeline (one round trip)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from parley_ingest.domain.identities import IdentityClaim

# KEYS[1]: births (customer key -> sequence number), KEYS[2]: the sequence, KEYS[3..]: the claim's identifiers.
_RESOLVE = """
local best, best_birth = false, false
for i = 3, #KEYS do
  local known = redis.call('GET', KEYS[i])
  if known then
    local birth = tonumber(redis.call('HGET', KEYS[1], known))
    if not best or (birth and (not best_birth or birth < best_birth)) then best, best_birth = known, birth end
  end
end
local canonical = best or ARGV[1]
if not best then redis.call('HSETNX', KEYS[1], canonical, redis.call('INCR', KEYS[2])) end
for i = 3, #KEYS do redis.call('SET', KEYS[i], canonical) end
return canonical
"""


class IdentityStoreUnavailable(Exception):
    """Redis did not answer: publishing under a guessed key could split a customer, so the webhook is retried."""


class IdentityStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._resolve_sha = redis.register_script(_RESOLVE).sha

    async def keys_for(self, claims: Sequence[tuple[str, str, IdentityClaim]]) -> list[str]:
        """The customer key of each (tenant, channel, claim), in order."""
        if not claims:
            return []
        try:
            try:
                answers = await self._resolve_all(claims)
            except NoScriptError:  # a new or restarted Redis: load the script once, then again
                await self._redis.script_load(_RESOLVE)
                answers = await self._resolve_all(claims)
        except (RedisError, OSError) as exc:
            raise IdentityStoreUnavailable(type(exc).__name__) from None
        return [answer.decode() if isinstance(answer, bytes) else str(answer) for answer in answers]

    async def _resolve_all(self, claims: Sequence[tuple[str, str, IdentityClaim]]) -> list[object]:
        """One round trip: EVALSHA per claim in a pipeline. (A pipeline of redis-py Script objects first asks
        SCRIPT EXISTS, a second round trip on every webhook.)"""
        async with self._redis.pipeline(transaction=False) as pipe:
            for tenant_id, channel_id, claim in claims:
                scope = f"{self._prefix}ingest:identity:{tenant_id}:{channel_id}"
                keys = [f"{scope}:births", f"{scope}:sequence",
                        *(self._key(scope, identifier) for identifier in claim.identifiers)]
                pipe.evalsha(self._resolve_sha, len(keys), *keys, claim.preferred_key)
            answers: list[object] = await pipe.execute()
        return answers

    @staticmethod
    def _key(scope: str, identifier: str) -> str:
        # provider ids are hashed: bounded keys, no separator games
        return f"{scope}:id:{hashlib.sha256(identifier.encode()).hexdigest()}"
