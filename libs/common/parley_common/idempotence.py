"""The idempotent producer after the broker lost what it knew of it.

Kafka de-duplicates an idempotent producer's retries by (producer id, partition, sequence number). When the broker
no longer has that state — the local broker killed and restarted (it keeps ~0.5 s less than it acknowledged), or
on Kafka a producer id expired after a long idle time — it refuses the producer's next sequence as out of order
(`OutOfOrderSequenceNumber`, `UnknownProducerId`). aiokafka 0.14 fails the record and keeps the sequence, so every
later record to that partition is refused too: measured, after a kill -9 of the local broker every record of the
router's partitions failed until the process restarted. As Kafka's Java producer does for a non-transactional
producer (`resetIdempotentProducerId`), the producer then takes a new producer id and starts every partition's
sequence again from 0; the record is sent again under it (a repeat a consumer absorbs by its event id).

aiokafka and FastStream are pinned; tests/faults/test_server_kills.py fails if an upgrade moves this seam."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiokafka.errors import OutOfOrderSequenceNumber, UnknownProducerId
from aiokafka.producer.transaction_manager import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, PidAndEpoch
from aiokafka.util import create_future
from faststream.kafka import KafkaBroker

SEQUENCE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId)
T = TypeVar("T")
log = structlog.get_logger(__name__)


def _transaction_manager(broker: KafkaBroker) -> Any:
    """The aiokafka producer's idempotence state (None before the broker connected)."""
    state = getattr(broker.config.producer, "_producer", None)
    producer = getattr(state, "producer", None)
    return getattr(producer, "_txn_manager", None)


def producer_id(broker: KafkaBroker) -> int | None:
    manager = _transaction_manager(broker)
    return None if manager is None else int(manager.producer_id)


def start_sequences_again(broker: KafkaBroker, failed_producer_id: int | None) -> None:
    """A new producer id, every partition's sequence from 0 — unless it already happened since `failed_producer_id`
    was the producer's id (several records fail together; one reset serves them all)."""
    manager = _transaction_manager(broker)
    if manager is None or manager.producer_id != failed_producer_id or failed_producer_id == NO_PRODUCER_ID:
        return
    log.warning("kafka_producer_sequence_lost", producer_id=failed_producer_id)
    manager._pid_and_epoch = PidAndEpoch(NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    manager._pid_waiter = create_future()  # the sender waits for a new id before it sends anything more
    manager._sequence_numbers.clear()


async def sent_again_if_sequence_lost(broker: KafkaBroker, send: Callable[[], Awaitable[T]]) -> T:
    """`send()`; when the broker refused it for a lost sequence, once more under a new producer id."""
    before = producer_id(broker)
    try:
        return await send()
    except SEQUENCE_LOST:
        start_sequences_again(broker, before)
        return await send()
