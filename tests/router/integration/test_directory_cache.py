"""The directory cache of two replicas over the real database: a write through one is seen by the other once
its entry is past the TTL; with no writes the other only checks the version, and reloads after the maximum age
(edits made straight in the database)."""

from __future__ import annotations

import asyncio
from typing import Any

from parley_common.settings import InfraSettings
from parley_router.adapters.directory import AgentSpec, Directory, RoutingSpec, RuleSpec, TeamSpec
from parley_router.adapters.directory_cache import DirectoryCache
from parley_router.domain.assignment import Agent
from parley_router.domain.conversation import AssigneeKind

TTL = 0.05
MAX_AGE = 1.0  # long enough for the first settled read to come before it on a loaded machine


class CountingDirectory(Directory):
    """The real adapter, counting full loads of the agents and reads of the version."""

    loads = 0
    version_reads = 0
    version_read = asyncio.Event()

    async def agents(self, tenant_id: str, team_id: str | None = None) -> list[Agent]:
        self.loads += 1
        return await super().agents(tenant_id, team_id)

    async def version(self, tenant_id: str) -> int:
        self.version_reads += 1
        self.version_read.set()
        return await super().version(tenant_id)


async def settled(cache: DirectoryCache, tenant_id: str) -> set[str]:
    """Read past the TTL: the first read starts the background check, the one after it sees its outcome."""
    await asyncio.sleep(TTL * 2)
    await cache.agents(tenant_id)
    await cache.checked(tenant_id)
    return set(await cache.agents(tenant_id))


async def test_a_write_on_one_replica_reaches_the_other_and_no_write_means_no_reload(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    writer, reader = Directory(db), CountingDirectory(db)
    await writer.put_agent("acme", "ann", AgentSpec(teams=["sales"]))
    here, there = DirectoryCache(writer, TTL), DirectoryCache(reader, TTL)
    assert set(await here.agents("acme")) == set(await there.agents("acme")) == {"ann"}

    for _ in range(3):
        assert await settled(there, "acme") == {"ann"}
    assert reader.loads == 1  # only versions were read since the first load

    await writer.put_agent("acme", "bob", AgentSpec(teams=["sales"]))
    here.invalidate("acme")
    assert set(await here.agents("acme")) == {"ann", "bob"}  # the writing replica at once
    assert await settled(there, "acme") == {"ann", "bob"}  # the other one after its TTL
    assert reader.loads == 2


async def test_an_edit_straight_in_the_database_shows_after_the_maximum_age(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    directory = Directory(db)
    await directory.put_agent("acme", "ann", AgentSpec())
    cache = DirectoryCache(directory, TTL, max_age_seconds=MAX_AGE)
    assert set(await cache.agents("acme")) == {"ann"}

    await db["agents"].insert_one({"_id": "acme|cid", "tenant_id": "acme", "login": "cid", **AgentSpec().model_dump()})
    assert await settled(cache, "acme") == {"ann"}  # the version did not move
    await asyncio.sleep(MAX_AGE)
    assert await settled(cache, "acme") == {"ann", "cid"}


async def test_one_version_read_checks_every_entry_of_the_tenant(mongo: Any, infra_settings: InfraSettings) -> None:
    directory = CountingDirectory(mongo[infra_settings.database_name("router")])
    await directory.put_agent("acme", "ann", AgentSpec())
    cache = DirectoryCache(directory, TTL)
    kinds = (cache.agents, cache.teams, cache.routing)
    for read in kinds:
        await read("acme")
    directory.version_reads = 0
    directory.version_read = asyncio.Event()
    await asyncio.sleep(TTL * 2)
    for read in kinds:  # all three past the TTL: one check of the version for them all
        await read("acme")
    await asyncio.wait_for(directory.version_read.wait(), 10)
    await asyncio.sleep(0.01)  # a second check would have been started with the first
    assert directory.version_reads == 1
    assert directory.loads == 1  # the version did not move: nothing loaded again


async def test_a_newer_releases_directory_documents_are_read_after_a_rollback(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    directory = Directory(db)
    await directory.put_agent("acme", "ann", AgentSpec(teams=["sales"]))
    await directory.put_team("acme", "sales", TeamSpec(name="Sales"))
    await directory.put_routing("acme", RoutingSpec(rules=[RuleSpec(id="vip", target_kind=AssigneeKind.TEAM,
                                                                    target_id="sales")]))
    newer = {"$set": {"added_by_a_newer_release": 1}}  # fields this release does not know, at every depth
    for collection in ("agents", "teams", "routing"):
        await db[collection].update_many({}, newer)
    await db["routing"].update_many({}, {"$set": {"rules.0.added_by_a_newer_release": 1}})

    assert [agent.login for agent in await directory.agents("acme")] == ["ann"]
    assert (await directory.team_specs("acme"))["sales"].name == "Sales"
    assert [rule.id for rule in (await directory.routing("acme")).rules] == ["vip"]
