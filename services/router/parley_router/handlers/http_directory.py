"""HTTP: agents (profile, presence heartbeat), teams and routing rules. Managers and owners configure;
agents send their own heartbeat."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from parley_common.auth import MANAGERS, Principal, Role, require_roles
from parley_common.bounds import PathId
from parley_common.errors import documented_errors
from parley_common.events.conversations import AgentChanged
from parley_common.topics import AGENTS_EVENTS
from parley_router.adapters.directory import AgentSpec, RoutingSpec, TeamSpec
from parley_router.domain.assignment import Presence
from parley_router.handlers.deps import engine_of
from parley_router.handlers.engine import CHANNEL_TYPES

router = APIRouter(tags=["agents, teams, routing"])
Manager = Annotated[Principal, Depends(require_roles(*MANAGERS))]
Anyone = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.MANAGER, Role.OWNER))]


class Heartbeat(BaseModel):
    presence: Presence = Presence.ONLINE


@router.put("/v1/agents/{login}", summary="Create or update an agent: teams, skills, capacity per channel")
async def put_agent(login: PathId, spec: AgentSpec, principal: Manager, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    await engine.directory_written(principal.tenant_id,
                                   await engine.stores.directory.put_agent(principal.tenant_id, login, spec))
    # after storing: the other services keep the agent's teams from this for the visibility rule
    await engine.publisher.publish(AgentChanged(
        occurred_at=engine.clock.now(), tenant_id=principal.tenant_id, correlation_id=request.state.correlation_id,
        login=login, teams=tuple(sorted(set(spec.teams)))), AGENTS_EVENTS)
    await engine.dispatch(principal.tenant_id)  # more capacity or new teams may serve the queue
    return {"login": login, **spec.model_dump()}


@router.get("/v1/agents", summary="Agents with presence, active conversations per channel type and capacity "
                                  "(default_capacity, and per channel type where it differs)")
async def list_agents(principal: Anyone, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    agents = await engine.stores.directory.agents(principal.tenant_id)
    logins = [agent.login for agent in agents]
    presence, active = await engine.stores.presence.snapshot(principal.tenant_id, logins, CHANNEL_TYPES)
    return {"items": [{"login": agent.login, "teams": sorted(agent.teams), "skills": sorted(agent.skills),
                       "presence": presence[agent.login].value,
                       "active": {channel: count for channel, count in active[agent.login] if count},
                       "default_capacity": agent.default_capacity, "capacity": dict(agent.capacity)}
                      for agent in agents]}


@router.post("/v1/agents/me/heartbeat", responses=documented_errors({}),
             summary="Presence heartbeat: online (offered work), away (finishing: no new offers, pending offers "
                     "go back to the queue, accepted conversations stay), offline; expires after the TTL")
async def heartbeat(body: Heartbeat, principal: Anyone, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    before = await engine.stores.presence.heartbeat(principal.tenant_id, principal.login, body.presence)
    offered = 0
    # offline always (an expired key may not have been handled yet); away once, when the agent steps away
    if body.presence is Presence.OFFLINE or (body.presence is Presence.AWAY and before is not Presence.AWAY):
        await request.app.state.upkeep.agent_stepped_away(principal.tenant_id, principal.login,
                                                          away=body.presence is Presence.AWAY)
    if body.presence is Presence.ONLINE and before is not Presence.ONLINE:
        offered = await engine.dispatch(principal.tenant_id)  # the moment an agent comes online
    return {"presence": body.presence.value, "previous": before.value, "offered": offered}


@router.put("/v1/teams/{team_id}", summary="Create or update a team: strategy and offer timeout")
async def put_team(team_id: PathId, spec: TeamSpec, principal: Manager, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    await engine.directory_written(principal.tenant_id,
                                   await engine.stores.directory.put_team(principal.tenant_id, team_id, spec))
    return {"id": team_id, **spec.model_dump()}


@router.get("/v1/teams", summary="Teams with their members")
async def list_teams(principal: Anyone, request: Request) -> dict[str, Any]:
    directory = engine_of(request).stores.directory
    specs = await directory.team_specs(principal.tenant_id)
    agents = await directory.agents(principal.tenant_id)
    return {"items": [{"id": team_id, **spec.model_dump(),
                       "members": sorted(agent.login for agent in agents if team_id in agent.teams)}
                      for team_id, spec in specs.items()]}


@router.put("/v1/routing", summary="Replace the tenant's routing rules (first match wins) and business hours")
async def put_routing(spec: RoutingSpec, principal: Manager, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    await engine.directory_written(principal.tenant_id,
                                   await engine.stores.directory.put_routing(principal.tenant_id, spec))
    return spec.model_dump()


@router.get("/v1/routing", summary="The tenant's routing rules")
async def get_routing(principal: Manager, request: Request) -> dict[str, Any]:
    return (await engine_of(request).stores.directory.routing(principal.tenant_id)).model_dump()
