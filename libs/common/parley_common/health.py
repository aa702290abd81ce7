"""Liveness (`/healthz`: the process answers), readiness (`/readyz`: its broker, database and cache answer) and
Prometheus metrics (`/metrics`, served at exactly that path: a mounted app answered it 307 to `/metrics/`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 2.0
# Set by every /readyz (the kubelet asks every 5 s), so an alert sees a pod's failing dependency by name.
READINESS = Gauge("parley_readiness_check", "1 when the readiness check answered last time, 0 when it failed",
                  ["service", "check"])


def kafka_check(broker: KafkaBroker) -> Check:
    async def check() -> object:
        if not await broker.ping(timeout=CHECK_TIMEOUT_S):
            raise ConnectionError("broker did not answer")
        return True

    return check


def mongo_check(client: AsyncMongoClient[Any]) -> Check:
    async def check() -> object:
        return await client.admin.command("ping")

    return check


def redis_check(client: Redis) -> Check:
    async def check() -> object:
        return await client.ping()

    return check


def health_router(checks: Mapping[str, Check], service: str = "unknown") -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results = await asyncio.gather(*(_run(check) for check in checks.values()))
        report = dict(zip(checks.keys(), results, strict=True))
        for check, result in report.items():
            READINESS.labels(service, check).set(1 if result == "ok" else 0)
        ready = all(result == "ok" for result in report.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": report},
                            status_code=200 if ready else 503)

    @router.get("/metrics", response_class=Response, summary="Prometheus metrics of this process (text format)")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


async def _run(check: Check) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported by type
        return f"failed: {type(exc).__name__}"
    return "ok"
