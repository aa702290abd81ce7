"""Redis: agent presence by heartbeat (keys expire → offline), per-channel capacity, round-robin cursors.

Capacity is a set of conversation ids per (agent, channel type); taking a slot is one Lua script, so
several router replicas can never put an agent over capacity, and taking the same conversation twice is a
no-op (replays)."""

from __future__ import annotations

from enum import IntEnum

from redis.asyncio import Redis

from parley_router.domain.assignment import Presence


class Take(IntEnum):
    """Outcome of a check-and-take; truthy when the agent holds the slot afterwards."""

    FULL = 0
    TAKEN = 1  # a new slot: give it back if the assignment is not stored after all
    ALREADY_HELD = 2  # this conversation held it before (a replay, or another replica won): never give back


# KEYS[1] = the agent's active set on one channel type; ARGV[1] = conversation id, ARGV[2] = capacity.
_TAKE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 2 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class PresenceStore:
    def __init__(self, redis: Redis, prefix: str, ttl_seconds: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._take = redis.register_script(_TAKE)

    def _presence_key(self, tenant_id: str, login: str) -> str:
        return f"{self._prefix}router:presence:{tenant_id}:{login}"

    def _active_key(self, tenant_id: str, login: str, channel_type: str) -> str:
        return f"{self._prefix}router:active:{tenant_id}:{login}:{channel_type}"

    async def heartbeat(self, tenant_id: str, login: str, presence: Presence) -> Presence:
        """Record a heartbeat; returns the presence before it (OFFLINE when the key had expired)."""
        key = self._presence_key(tenant_id, login)
        before: object
        if presence is Presence.OFFLINE:
            before = await self._redis.getdel(key)
        else:
            before = await self._redis.set(key, presence.value, ex=self._ttl, get=True)
        return Presence(str(before)) if before else Presence.OFFLINE

    async def presence_of(self, tenant_id: str, logins: list[str]) -> dict[str, Presence]:
        if not logins:
            return {}
        values = await self._redis.mget([self._presence_key(tenant_id, login) for login in logins])
        return {login: Presence(str(value)) if value else Presence.OFFLINE for login, value in zip(logins, values,
                                                                                                strict=True)}

    async def take(self, tenant_id: str, login: str, channel_type: str, conversation_id: str,
                   capacity: int) -> Take:
        result = await self._take(keys=[self._active_key(tenant_id, login, channel_type)],
                                  args=[conversation_id, capacity])
        return Take(int(result))

    async def release(self, tenant_id: str, login: str, channel_type: str, conversation_id: str) -> None:
        await self._redis.srem(self._active_key(tenant_id, login, channel_type), conversation_id)

    async def active_counts(self, tenant_id: str, logins: list[str], channel_types: list[str]) -> dict[
            str, tuple[tuple[str, int], ...]]:
        pipe = self._redis.pipeline(transaction=False)
        for login in logins:
            for channel_type in channel_types:
                pipe.scard(self._active_key(tenant_id, login, channel_type))
        counts = iter(await pipe.execute())
        return {login: tuple((channel_type, int(next(counts))) for channel_type in channel_types)
                for login in logins}

    async def snapshot(self, tenant_id: str, logins: list[str], channel_types: list[str],
                       team_ids: list[str]) -> tuple[dict[str, Presence], dict[str, tuple[tuple[str, int], ...]],
                                                     dict[str, str]]:
        """Presence, active counts and round-robin cursors in one round trip (the dispatch hot path)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.mget([self._presence_key(tenant_id, login) for login in logins] or ["-"])
        for login in logins:
            for channel_type in channel_types:
                pipe.scard(self._active_key(tenant_id, login, channel_type))
        for team_id in team_ids:
            pipe.get(f"{self._prefix}router:rr:{tenant_id}:{team_id}")
        results = await pipe.execute()
        presence = {login: Presence(str(value)) if value else Presence.OFFLINE
                    for login, value in zip(logins, results[0], strict=False)}
        counts_iter = iter(results[1:1 + len(logins) * len(channel_types)])
        counts = {login: tuple((channel_type, int(next(counts_iter))) for channel_type in channel_types)
                  for login in logins}
        cursors = {team_id: str(value) for team_id, value in
                   zip(team_ids, results[1 + len(logins) * len(channel_types):], strict=True) if value}
        return presence, counts, cursors

    async def set_last_served(self, tenant_id: str, team_id: str, login: str) -> None:
        await self._redis.set(f"{self._prefix}router:rr:{tenant_id}:{team_id}", login)
