"""A short-lived per-process cache of the tenant directory (agents, teams, routing rules).

These change rarely and are read on every routed message; with many agents per team, reading them from the
database each time would dominate. Changes made through this process are visible at once (invalidate);
changes made through another replica within `ttl_seconds`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from parley_router.adapters.directory import Directory
from parley_router.domain.assignment import Agent, Team
from parley_router.domain.rules import BusinessHours, Rule

T = TypeVar("T")


@dataclass(frozen=True)
class CompiledRouting:
    rules: tuple[Rule, ...]
    hours: BusinessHours


class DirectoryCache:
    def __init__(self, directory: Directory, ttl_seconds: float = 2.0) -> None:
        self._directory = directory
        self._ttl = ttl_seconds
        self._entries: dict[tuple[str, str], tuple[float, Any]] = {}

    def invalidate(self, tenant_id: str) -> None:
        for key in [key for key in self._entries if key[0] == tenant_id]:
            del self._entries[key]

    async def _cached(self, tenant_id: str, kind: str, load: Callable[[], Awaitable[T]]) -> T:
        hit = self._entries.get((tenant_id, kind))
        if hit is not None and hit[0] > time.monotonic():
            value: T = hit[1]
            return value
        loaded = await load()
        self._entries[(tenant_id, kind)] = (time.monotonic() + self._ttl, loaded)
        return loaded

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
