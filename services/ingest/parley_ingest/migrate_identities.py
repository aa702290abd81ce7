"""Once, when upgrading from a version that kept the customers' identity keys only in Redis (before issue 18):
copy them into ingest's database, so nobody's key changes. `python -m parley_ingest.migrate_identities`, with
ingest's environment (PARLEY_MONGO_URI, PARLEY_REDIS_URL, PARLEY_NAMESPACE); safe to run again, and while ingest
runs.

The old keys: `<prefix>ingest:identity:<tenant>:<channel>:id:<sha256>` → the customer key, and per channel
`…:births` (key → sequence number). Each identifier is recorded with its key born at that sequence number, which
sorts before every key born since (milliseconds since the epoch), so a customer who got a second key between the
upgrade and the migration is joined back to the old one. The cache entries of the copied identifiers are dropped
(read again from the database); the old keys are left for the operator to delete once satisfied."""

from __future__ import annotations

import asyncio

import structlog
from redis.asyncio import Redis

from parley_common.logging import configure_logging
from parley_common.runtime import Runtime
from parley_common.settings import load_settings
from parley_ingest.adapters.identity_records import IdentityRecords
from parley_ingest.domain.identities import rank
from parley_ingest.settings import IngestSettings

PROGRAM = "parley-ingest-migrate-identities"
BATCH = 500
log = structlog.get_logger(__name__)


async def migrate(redis: Redis, records: IdentityRecords, prefix: str) -> int:
    """Copies every old identity key under `prefix`; answers how many."""
    copied = 0
    async for births_key in redis.scan_iter(match=f"{prefix}ingest:identity:*:births", count=BATCH):
        scope = str(births_key).removesuffix(":births")  # the client decodes answers (parley_common.redis)
        tenant_id, channel_id = scope.removeprefix(f"{prefix}ingest:identity:").split(":")
        births = {str(key): int(birth) for key, birth in (await redis.hgetall(births_key)).items()}
        batch: list[str] = []
        async for identifier_key in redis.scan_iter(match=f"{scope}:id:*", count=BATCH):
            batch.append(str(identifier_key))
            if len(batch) == BATCH:
                copied += await _copy(redis, records, scope, tenant_id, channel_id, births, batch)
                batch = []
        copied += await _copy(redis, records, scope, tenant_id, channel_id, births, batch)
        log.info("identities_migrated", tenant_id=tenant_id, channel_id=channel_id, so_far=copied)
    return copied


async def _copy(redis: Redis, records: IdentityRecords, scope: str, tenant_id: str, channel_id: str,
                births: dict[str, int], identifier_keys: list[str]) -> int:
    if not identifier_keys:
        return 0
    keys = await redis.mget(identifier_keys)
    ranks = {identifier_key.rpartition(":")[2]: rank(births.get(str(key), 0), str(key))
             for identifier_key, key in zip(identifier_keys, keys, strict=True) if key is not None}
    await records.adopt(tenant_id, channel_id, ranks)
    if ranks:
        await redis.delete(*(f"{scope}:rank:{sha}" for sha in ranks))
    return len(ranks)


async def _main(settings: IngestSettings) -> None:
    runtime = Runtime("ingest", settings.infra, use_mongo=True, use_redis=True)
    try:
        copied = await migrate(runtime.redis, IdentityRecords(runtime.db), settings.infra.redis_prefix())
    finally:
        await runtime.close()
    log.info("identities_migration_done", copied=copied)


def main() -> None:
    settings = load_settings(IngestSettings, PROGRAM)
    configure_logging(PROGRAM, settings.infra.log_level, settings.infra.log_json)
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
