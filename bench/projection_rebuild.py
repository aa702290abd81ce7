"""How long outbound's rebuild of its Redis projections takes after the cache lost them (handlers/
projection_rebuild.py): CONTACTS contacts in its MongoDB audience (custom fields, an identity, every tenth blocked)
and MESSAGES customer messages plus a tenth as many marketing preferences on the topics, in a namespace of its
own; then one rebuild, timed, with this process's CPU.

    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"
    export PARLEY_KAFKA_BOOTSTRAP PARLEY_MONGO_URI PARLEY_REDIS_URL
    .venv/bin/python bench/projection_rebuild.py [MESSAGES [CONTACTS]]
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from parley_common.clock import SystemClock
from parley_common.events.inbound import Customer, MarketingPreferenceChanged, MessageReceived, TextPart
from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.mongo import mongo_client
from parley_common.redis import redis_client
from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES, INBOUND_PREFERENCES, Topic
from parley_common.visibility_store import VisibilityProjection
from parley_outbound.adapters.audience_repo import AudienceRepository
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.adapters.preferences_repo import MarketingPreferenceRepository
from parley_outbound.adapters.topic_replay import replay
from parley_outbound.handlers.projection_rebuild import ProjectionRebuild

TENANT, CHANNEL = "bench", "wa-bench"


def message(user: int, at: datetime) -> MessageReceived:
    return MessageReceived(occurred_at=at, tenant_id=TENANT, correlation_id="bench", channel_id=CHANNEL,
                           external_user_id=f"u{user}", channel_type="whatsapp", customer=Customer(),
                           provider_message_id=f"m-{uuid.uuid4().hex}", provider_timestamp=at, received_at=at,
                           parts=(TextPart(text="hello"),))


def preference(user: int, at: datetime) -> MarketingPreferenceChanged:
    return MarketingPreferenceChanged(occurred_at=at, tenant_id=TENANT, correlation_id="bench", channel_id=CHANNEL,
                                      external_user_id=f"u{user}", channel_type="whatsapp", opted_out=True,
                                      provider_timestamp=at)


async def seed(infra: InfraSettings, audience: AudienceRepository, messages: int, contacts: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, linger_ms=20)
    await producer.start()
    try:
        now = datetime.now(UTC)
        events: list[tuple[Topic, MessageReceived | MarketingPreferenceChanged]] = [
            (INBOUND_MESSAGES, message(index % max(1, contacts), now - timedelta(seconds=index)))
            for index in range(messages)]
        events += [(INBOUND_PREFERENCES, preference(index, now)) for index in range(messages // 10)]
        sent = [await producer.send(topic.name(infra.namespace), event.model_dump_json().encode(),
                                    key=f"{TENANT}|{CHANNEL}|{event.external_user_id}".encode())
                for topic, event in events]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    operations = []
    for index in range(contacts):
        identity = {"channel_id": CHANNEL, "external_user_id": f"u{index}"}
        operations.append(audience.created(TENANT, f"c{index}", f"Customer {index}", [identity]))
        operations.append(audience.updated(TENANT, f"c{index}", None, {"tier": "gold", "city": "Oslo"}))
        if index % 10 == 0:
            operations.append(audience.identity_blocked(TENANT, f"c{index}", identity, True))
    for start in range(0, len(operations), 1000):
        await audience.write(operations[start:start + 1000])


async def main(messages: int, contacts: int) -> None:
    infra = InfraSettings(kafka_bootstrap=os.environ["PARLEY_KAFKA_BOOTSTRAP"],
                          mongo_uri=os.environ["PARLEY_MONGO_URI"], redis_url=os.environ["PARLEY_REDIS_URL"],
                          namespace="bench" + uuid.uuid4().hex[:8], jwt_secret=SecretStr("x" * 32))
    await ensure_topics(infra.kafka_bootstrap, infra.namespace)
    mongo, redis = mongo_client(infra.mongo_uri, "bench"), redis_client(infra.redis_url)
    audience = AudienceRepository(mongo[infra.database_name("outbound")])
    try:
        await seed(infra, audience, messages, contacts)
        rebuild = ProjectionRebuild(redis=redis, prefix=infra.redis_prefix(), namespace=infra.namespace,
                                    audience=audience, check_seconds=3600,
                                    preferences=MarketingPreferenceRepository(mongo[infra.database_name("outbound")]),
                                    messages=MessageRepository(mongo[infra.database_name("outbound")]),
                                    owners=VisibilityProjection(mongo[infra.database_name("outbound")]),
                                    clock=SystemClock(),
                                    replay=lambda topics, batch: replay(infra, topics, "bench-rebuild", batch))
        wall, cpu = time.monotonic(), time.process_time()
        assert await rebuild.rebuild_once()
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        records = messages + messages // 10
        print(f"rebuilt {contacts} contacts + {records} records in {wall:.2f} s ({records / wall:,.0f} records/s; "
              f"this process's CPU {cpu:.2f} s = {cpu / max(1, records + contacts) * 1e6:.0f} µs per item)")
    finally:
        async for key in redis.scan_iter(match=f"{infra.redis_prefix()}*"):
            await redis.delete(key)
        await mongo.drop_database(infra.database_name("outbound"))
        await drop_namespace_topics(infra.kafka_bootstrap, infra.namespace)
        await redis.aclose()
        await mongo.close()


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:]]
    asyncio.run(main(*(arguments + [20_000, 5_000][len(arguments):])))
