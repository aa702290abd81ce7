"""A record larger than the dead-letter topic takes (an attachment event: up to 36 MiB against 1 MiB) is still
dead-lettered — with its first bytes, its size, its SHA-256 and where the whole one stays — and the partition
moves on. Before, the letter carried the whole original, the producer refused it (MessageSizeTooLargeError),
and the record came again forever."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from known_channels import TEST_CHANNELS

from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.dead_letters import LetterRef, NotReplayable, replay_record
from parley_common.events.dlq import (
    ORIGINAL_MAX_BYTES,
    TRUNCATED_PREVIEW_BYTES,
    original_record_fields,
    original_value_fields,
)
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import DEAD_LETTERS, INBOUND_ATTACHMENTS


async def consume_and_read_letters(consumer_broker: Any, settings: InfraSettings, count: int) -> list[Any]:
    """Start the consuming broker, read `count` records of the dead-letter topic, stop it."""
    await consumer_broker.start()
    reader = AIOKafkaConsumer(DEAD_LETTERS.name(settings.namespace), bootstrap_servers=settings.kafka_bootstrap,
                              auto_offset_reset="earliest", group_id=f"dlq-{settings.namespace}")
    await reader.start()
    try:
        return [await asyncio.wait_for(reader.getone(), 30) for _ in range(count)]
    finally:
        await reader.stop()
        await asyncio.wait_for(consumer_broker.stop(), 30)


def test_small_originals_travel_whole_and_large_ones_are_cut_with_a_reference() -> None:
    small = b"x" * ORIGINAL_MAX_BYTES
    assert original_value_fields(small) == {"original_value_base64": base64.b64encode(small).decode()}
    large = bytes(range(256)) * 8192  # 2 MiB
    fields = original_value_fields(large)
    assert base64.b64decode(fields["original_value_base64"]) == large[:TRUNCATED_PREVIEW_BYTES]
    assert fields["original_truncated"] is True
    assert (fields["original_size_bytes"], fields["original_sha256"]) == (len(large), hashlib.sha256(large).hexdigest())


async def test_a_record_too_large_for_the_dead_letter_topic_is_dead_lettered_and_the_partition_moves_on(
        kafka_topics: InfraSettings) -> None:
    namespace = kafka_topics.namespace
    topic = INBOUND_ATTACHMENTS.name(namespace)
    producer = make_broker(kafka_topics.kafka_bootstrap, "big-producer",
                           max_request_size=INBOUND_ATTACHMENTS.max_message_bytes)
    consumer_broker = make_broker(kafka_topics.kafka_bootstrap, "big-consumer")  # the default 1 MiB producer
    publisher = EventPublisher(consumer_broker, namespace)

    async def never(event: object) -> None:
        raise AssertionError("neither record parses")

    consume_group(consumer_broker, ConsumerGroup("big", (Reads(INBOUND_ATTACHMENTS, never),)), namespace=namespace,
                  publisher=publisher, service="test", channels=TEST_CHANNELS)
    huge = b'{"not": "an event", "padding": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    await producer.connect()
    try:  # one key: one partition, the small record behind the large one
        await producer.publish(huge, topic=topic, key=b"acme|wa-main|1")
        await producer.publish(b"{}", topic=topic, key=b"acme|wa-main|1")
    finally:
        await producer.stop()
    records = await consume_and_read_letters(consumer_broker, kafka_topics, 2)  # stalled: no second letter

    letters = sorted((DEAD_LETTERS.parse(record.value) for record in records), key=lambda letter: letter.offset or 0)
    assert all(len(record.value) < DEAD_LETTERS.max_message_bytes for record in records)
    letter, small = letters
    assert (letter.reason, letter.original_truncated, small.original_truncated) == ("invalid_event", True, False)
    assert (letter.original_size_bytes, letter.original_sha256) == (len(huge), hashlib.sha256(huge).hexdigest())
    assert base64.b64decode(letter.original_value_base64) == huge[:TRUNCATED_PREVIEW_BYTES]
    assert base64.b64decode(small.original_value_base64) == b"{}"
    with pytest.raises(NotReplayable, match=f"offset {letter.offset}"):  # never its preview as if it were the record
        replay_record(letter, LetterRef(0, 0), DEAD_LETTERS.name(namespace), {letter.source_topic},
                      letter.occurred_at)


def test_a_long_key_or_large_headers_are_cut_and_mark_the_letter_truncated() -> None:
    fields = original_record_fields(b"{}", b"k" * 5000, {f"h{index}": "v" * 5000 for index in range(100)})
    assert fields["original_truncated"] is True and fields["original_sha256"] == hashlib.sha256(b"{}").hexdigest()
    assert len(base64.b64decode(fields["original_key_base64"])) == 1024
    assert len(fields["original_headers"]) == 64 and {len(value) for value in fields["original_headers"].values()} \
        == {1024}
    whole = original_record_fields(b"{}", b"acme|wa-main|1", {"ce_id": "e-1"})
    assert "original_truncated" not in whole and whole["original_headers"] == {"ce_id": "e-1"}


async def test_a_record_with_megabytes_of_headers_and_overlong_ids_is_dead_lettered(
        kafka_topics: InfraSettings) -> None:
    """Before, its letter carried 1.2 MiB of headers (unpublishable) and took a 300-character correlation id from
    them (invalid): either way the letter failed and the record came again forever."""
    namespace = kafka_topics.namespace
    producer = make_broker(kafka_topics.kafka_bootstrap, "headers-producer",
                           max_request_size=INBOUND_ATTACHMENTS.max_message_bytes)
    consumer_broker = make_broker(kafka_topics.kafka_bootstrap, "headers-consumer")

    async def never(event: object) -> None:
        raise AssertionError("the record does not parse")

    consume_group(consumer_broker, ConsumerGroup("headers", (Reads(INBOUND_ATTACHMENTS, never),)), namespace=namespace,
                  publisher=EventPublisher(consumer_broker, namespace), service="test", channels=TEST_CHANNELS)
    headers = {"ce_correlationid": "c" * 300, "ce_tenantid": "t" * 300,
               **{f"x-big-{index}": "h" * 300_000 for index in range(4)}}
    await producer.connect()
    try:
        await producer.publish(b"{not json", topic=INBOUND_ATTACHMENTS.name(namespace), key=b"acme|wa-main|1",
                               headers=headers)
    finally:
        await producer.stop()
    [record] = await consume_and_read_letters(consumer_broker, kafka_topics, 1)

    letter = DEAD_LETTERS.parse(record.value)
    assert (letter.reason, letter.original_truncated, letter.tenant_id) == ("invalid_event", True, "unknown")
    assert letter.correlation_id != "c" * 300 and base64.b64decode(letter.original_value_base64) == b"{not json"
    assert {len(letter.original_headers[f"x-big-{index}"]) for index in range(4)} == {1024}
    assert len(record.value) < DEAD_LETTERS.max_message_bytes
