"""Ingest over the real broker and Redis: the FastAPI app with its lifespan, and a reader of whole topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from parley_common.settings import InfraSettings
from parley_common.topics import Topic
from parley_ingest.app import create_app
from parley_ingest.settings import IngestSettings


@pytest.fixture
async def client(kafka_topics: InfraSettings, redis: Redis, mongo: AsyncMongoClient[Any], kit: Any
                 ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(IngestSettings(infra=kafka_topics, publish_timeout_seconds=10), channels=kit.channels)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest"
    ) as http:
        yield http


async def read_all(infra: InfraSettings, topic: Topic) -> list[Any]:
    """Every record of the topic in this test's namespace, read from the start up to the end offsets."""
    name = topic.name(infra.namespace)
    partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        async def drain() -> None:
            while await behind():
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)

        await asyncio.wait_for(drain(), 20)
        return records
    finally:
        await consumer.stop()


async def events_of(infra: InfraSettings, topic: Topic) -> list[Any]:
    return [topic.parse(record.value) for record in await read_all(infra, topic)]


class Topics:
    """What reached Kafka in this test's namespace."""

    def __init__(self, infra: InfraSettings) -> None:
        self.infra = infra

    async def records(self, topic: Topic) -> list[Any]:
        return await read_all(self.infra, topic)

    async def events(self, topic: Topic) -> list[Any]:
        return await events_of(self.infra, topic)


@pytest.fixture
def topics(kafka_topics: InfraSettings) -> Topics:
    return Topics(kafka_topics)
