"""Supervisors' views, served from the router's own state: the floor now and the figures of a period. The floor
is also exported as Prometheus gauges (`supervisor_metrics.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from parley_common.auth import MANAGERS, Principal, require_roles
from parley_common.bounds import IsoDatetime
from parley_common.errors import ApiError, documented_errors
from parley_router.domain.supervision import PeriodFigures, floor_now
from parley_router.handlers import supervisor_metrics
from parley_router.handlers.deps import engine_of
from parley_router.handlers.engine import CHANNEL_TYPES, Engine

router = APIRouter(prefix="/v1/supervisor", tags=["supervisor"])
Manager = Annotated[Principal, Depends(require_roles(*MANAGERS))]
MAX_PERIOD = timedelta(days=31)
BATCH = 1000


async def floor(engine: Engine, tenant_id: str) -> dict[str, Any]:
    """The tenant's floor now; the Prometheus gauges follow it."""
    queued = [conv async for batch in engine.stores.conversations.stream(
        {"tenant_id": tenant_id, "status": "queued", "blocked": False}, [("priority", -1), ("waiting_since", 1)],
        BATCH) for conv in batch]
    agents = await engine.stores.directory.agents(tenant_id)
    presence, active = await engine.stores.presence.snapshot(tenant_id, [a.login for a in agents], CHANNEL_TYPES)
    view = floor_now(queued, [agent.live(presence[agent.login], active[agent.login]) for agent in agents],
                     engine.clock.now())
    supervisor_metrics.export_floor(tenant_id, view)
    return view


@router.get("/now", responses=documented_errors({}),
            summary="The floor now: queued and longest wait per team and channel, agents per team "
                    "online / away / offline / at capacity, conversations per agent")
async def now(principal: Manager, request: Request) -> dict[str, Any]:
    return await floor(engine_of(request), principal.tenant_id)


@router.get("/period", responses=documented_errors({
    422: "invalid_period (since not before until, or longer than 31 days), validation_failed"}),
            summary="Figures of a period: first response and wait time (median, p90), conversations "
                    "opened and closed, in total, per team and per agent")
async def period(principal: Manager, request: Request,
                 since: Annotated[IsoDatetime | None, Query(description="default: 24 h before `until`")] = None,
                 until: Annotated[IsoDatetime | None, Query(description="default: now")] = None,
                 ) -> dict[str, Any]:
    engine = engine_of(request)
    end = until or engine.clock.now()
    start = since or end - timedelta(days=1)
    if not start < end or end - start > MAX_PERIOD:
        raise ApiError(422, "invalid_period", f"since must be before until, at most {MAX_PERIOD.days} days")
    figures = PeriodFigures()
    repo, tenant = engine.stores.conversations, principal.tenant_id
    async for batch in repo.stream({"tenant_id": tenant, "opened_at": _within(start, end)}, [("opened_at", 1)], BATCH):
        for conv in batch:
            figures.opened(conv)
    async for batch in repo.stream({"tenant_id": tenant, "closed_at": _within(start, end)}, [("closed_at", 1)], BATCH):
        for conv in batch:
            figures.closed(conv)
    return {"since": start.isoformat(), "until": end.isoformat(), **figures.as_dict()}


def _within(start: datetime, end: datetime) -> dict[str, datetime]:
    return {"$gte": start, "$lt": end}
