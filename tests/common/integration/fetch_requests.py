"""The fetch requests a test's consumers send, counted at aiokafka's client: a consumer's own and its process's idle
watcher's (parley_common.kafka_seams.IdleWatch) alike."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest

from parley_common.kafka_seams import IDLE_FETCH_BACKOFF_MS


@dataclass
class FetchRequests:
    topics: list[frozenset[str]] = field(default_factory=list)  # the topics each request asked for
    answered_in: list[float] = field(default_factory=list)  # how long each waited for its answer, in seconds

    def clear(self) -> None:
        self.topics.clear()
        self.answered_in.clear()

    def held_by_the_broker(self) -> bool:
        """Whether the broker held empty fetches (Kafka's long poll, PARLEY_TEST_INFRA=containers) rather than
        answering them at once as the local broker does."""
        waits = sorted(self.answered_in)
        return bool(waits) and waits[len(waits) // 2] >= IDLE_FETCH_BACKOFF_MS / 1000


def record_fetch_requests(monkeypatch: pytest.MonkeyPatch) -> FetchRequests:
    """From now until the test ends, every fetch request sent in this process."""
    send = AIOKafkaClient.send
    sent = FetchRequests()

    async def recording(self: AIOKafkaClient, node_id: int, request: Any, **options: Any) -> Any:
        if not isinstance(request, FetchRequest):
            return await send(self, node_id, request, **options)
        sent.topics.append(frozenset(topic for topic, _ in request.topics))
        started = time.monotonic()
        answer = await send(self, node_id, request, **options)
        sent.answered_in.append(time.monotonic() - started)
        return answer

    monkeypatch.setattr(AIOKafkaClient, "send", recording)
    return sent
