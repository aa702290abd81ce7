"""The Kafka side of ingest: connect lazily (the service must answer 503, not crash, while Kafka is away),
publish a request's events with acks=all and wait for every acknowledgement, per-conversation order kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog
from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker

from parley_common.events.envelope import Envelope
from parley_common.idempotence import SEQUENCE_LOST, producer_id, start_sequences_again
from parley_common.kafka import EventPublisher
from parley_common.topics import Topic

log = structlog.get_logger(__name__)
RECONNECT_INTERVAL_S = 1.0


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time: the provider must retry (HTTP 503)."""


class UnpublishableEvent(Exception):
    """An event cannot be serialised (e.g. a provider value nested too deep): retrying cannot help."""


class EventTooLarge(Exception):
    """One event exceeds what the producer may send: retrying cannot help (HTTP 413)."""


class KafkaLink:
    def __init__(self, broker: KafkaBroker, publisher: EventPublisher, timeout_seconds: float) -> None:
        self._broker = broker
        self._publisher = publisher
        self._timeout = timeout_seconds
        self._connected = False
        self._next_attempt = 0.0
        self._lock = asyncio.Lock()

    async def connect(self) -> bool:
        if self._connected:
            return True
        async with self._lock:
            # While Kafka is away, try at most once per RECONNECT_INTERVAL_S, not once per webhook.
            if not self._connected and time.monotonic() >= self._next_attempt:
                try:
                    await asyncio.wait_for(self._broker.connect(), self._timeout)
                    self._connected = True
                except Exception as exc:  # noqa: BLE001 - any connect failure means "not now, retry later"
                    self._next_attempt = time.monotonic() + RECONNECT_INTERVAL_S
                    log.warning("kafka_connect_failed", error=type(exc).__name__)
        return self._connected

    async def check(self) -> object:
        """Readiness: connected and the broker answers."""
        if not await self.connect() or not await self._broker.ping(timeout=2.0):
            raise ConnectionError("kafka is not reachable")
        return True

    async def publish_all(self, items: Sequence[tuple[Envelope, Topic]]) -> None:
        """Publish everything; return only when Kafka acknowledged all of it, else raise BrokerUnavailable.

        Events are handed to the producer one after another in list order (so one conversation's events keep
        their order on its partition), then all acknowledgements are awaited together."""
        if not items:
            return
        try:
            encoded = [(event, topic, event.model_dump_json().encode()) for event, topic in items]
        except (ValueError, RecursionError) as exc:  # pydantic's serialisation errors are ValueErrors
            raise UnpublishableEvent(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not await self.connect():
            raise BrokerUnavailable("kafka is not connected")
        producer = producer_id(self._broker)
        try:
            await asyncio.wait_for(self._send_all(encoded), self._timeout)
        except MessageSizeTooLargeError as exc:
            raise EventTooLarge(str(exc)) from exc
        except Exception as exc:
            if isinstance(exc, SEQUENCE_LOST):  # the provider's retry goes out under a new producer id
                start_sequences_again(self._broker, producer)
            log.warning("kafka_publish_failed", error=type(exc).__name__, events=len(items))
            raise BrokerUnavailable(type(exc).__name__) from exc

    async def _send_all(self, items: Sequence[tuple[Envelope, Topic, bytes]]) -> None:
        acks = [await self._publisher.enqueue(event, topic, encoded) for event, topic, encoded in items]
        await asyncio.gather(*acks)

    async def close(self) -> None:
        if self._connected:
            await self._broker.stop()
            self._connected = False
