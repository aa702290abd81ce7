"""A short-lived per-process cache of the tenant directory (agents, teams, routing rules).

These change rarely and are read on every routed message; with many agents per team, reading them from the
database each time would dominate. Changes made through this process are visible at once (invalidate);
changes made through another replica within `ttl_seconds`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from parley_router.adapters.directory import Directory
from parley_router.domain.assignment import Agent, Team
from parley_router.domain.rules import BusinessHours, Rule

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CompiledRouting:
    rules: tuple[Rule, ...]
    hours: BusinessHours


class DirectoryCache:
    """Past `ttl_seconds` an entry is still served while one background load refreshes it: a reload of a
    large tenant (~70 ms for 1,000 agents here) never sits in a routed message's latency."""

    def __init__(self, directory: Directory, ttl_seconds: float = 2.0) -> None:
        self._directory = directory
        self._ttl = ttl_seconds
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._generation: dict[str, int] = {}  # a load begun before an invalidation must not store its result

    def invalidate(self, tenant_id: str) -> None:
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
        for key in [key for key in self._entries if key[0] == tenant_id]:
            del self._entries[key]

    async def _cached(self, tenant_id: str, kind: str, load: Callable[[], Awaitable[T]]) -> T:
        key = (tenant_id, kind)
        hit = self._entries.get(key)
        if hit is None:
            return await self._load(key, load)
        if hit[0] <= time.monotonic() and key not in self._refreshing:
            task = asyncio.create_task(self._refresh(key, load))
            self._refreshing[key] = task
            task.add_done_callback(lambda _: self._refreshing.pop(key, None))
        value: T = hit[1]
        return value

    async def _load(self, key: tuple[str, str], load: Callable[[], Awaitable[T]]) -> T:
        generation = self._generation.get(key[0], 0)
        loaded = await load()
        if generation == self._generation.get(key[0], 0):
            self._entries[key] = (time.monotonic() + self._ttl, loaded)
        return loaded

    async def _refresh(self, key: tuple[str, str], load: Callable[[], Awaitable[T]]) -> None:
        try:
            await self._load(key, load)
        except Exception:  # the stale entry keeps serving; the next read past the TTL tries again
            log.warning("directory_refresh_failed", tenant_id=key[0], kind=key[1], exc_info=True)

    async def agents(self, tenant_id: str) -> dict[str, Agent]:
        async def load() -> dict[str, Agent]:
            return {agent.login: agent for agent in await self._directory.agents(tenant_id)}
        return await self._cached(tenant_id, "agents", load)

    async def teams(self, tenant_id: str) -> dict[str, Team]:
        return await self._cached(tenant_id, "teams", lambda: self._directory.teams(tenant_id))

    async def routing(self, tenant_id: str) -> CompiledRouting:
        async def load() -> CompiledRouting:
            spec = await self._directory.routing(tenant_id)
            return CompiledRouting(tuple(rule.to_rule() for rule in spec.rules), spec.hours())
        return await self._cached(tenant_id, "routing", load)
