"""The clients one service process holds, and its `main`."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeVar

from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from parley_common import round_trips, tracing
from parley_common.connections import kafka_security, mongo_client_options, redis_client_options
from parley_common.dead_peers import ReplicaLeases
from parley_common.health import Check, kafka_check, mongo_check, redis_check
from parley_common.kafka import EventPublisher, make_broker
from parley_common.logging import configure_logging
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.rejoin import replica_client_id
from parley_common.service import serve
from parley_common.settings import InfraSettings, ServiceSettings, fail_start, load_settings

S = TypeVar("S", bound=ServiceSettings)


class Runtime:
    """Kafka broker and publisher always; MongoDB and Redis when the service uses them."""

    def __init__(self, service: str, infra: InfraSettings, *, use_mongo: bool, use_redis: bool) -> None:
        self.service = service
        self.infra = infra
        if infra.count_round_trips:
            round_trips.enable()
        self.broker = make_broker(infra.kafka_bootstrap, client_id=replica_client_id(service, infra.instance_id),
                                  idle_fetch_backoff_ms=infra.kafka_idle_fetch_backoff_ms,
                                  security=kafka_security(infra))
        self.publisher = EventPublisher(self.broker, infra.namespace, service)
        self._mongo: AsyncMongoClient[dict[str, Any]] | None = (
            mongo_client(infra.mongo_uri, f"parley-{service}", service, **mongo_client_options(infra))
            if use_mongo else None
        )
        self._redis: Redis | None = (
            redis_client(infra.redis_url, service, **redis_client_options(infra)) if use_redis else None
        )

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._mongo is None:
            raise RuntimeError(f"{self.service} was built without MongoDB")
        return self._mongo[self.infra.database_name(self.service)]

    @property
    def replica_leases(self) -> ReplicaLeases | None:
        """Where this replica proves it is alive to its peers (parley_common.dead_peers): the service's database."""
        if self._mongo is None:
            return None
        return ReplicaLeases(self.db, replica_client_id(self.service, self.infra.instance_id))

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise RuntimeError(f"{self.service} was built without Redis")
        return self._redis

    def readiness(self) -> dict[str, Check]:
        checks: dict[str, Check] = {"kafka": kafka_check(self.broker)}
        if self._mongo is not None:
            checks["mongodb"] = mongo_check(self._mongo)
        if self._redis is not None:
            checks["redis"] = redis_check(self._redis)
        return checks

    async def close(self) -> None:
        if self._mongo is not None:
            await self._mongo.close()
        if self._redis is not None:
            await self._redis.aclose()


def run_service(program: str, settings_type: type[S], create_app: Callable[[S], FastAPI]) -> None:
    """Entry point of a service process: settings (refuse to start on a bad one), logging, tracing (when an
    OTLP endpoint is set), HTTP server."""
    settings = load_settings(settings_type, program)
    configure_logging(program, settings.infra.log_level, settings.infra.log_json)
    try:
        tracing.start_tracing(program, version(program), settings.infra.instance_id)
    except tracing.TracingSettingsError as problem:
        fail_start(program, str(problem))
    serve(create_app(settings), settings.host, settings.port)
