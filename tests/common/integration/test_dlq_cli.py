"""`parley dlq` against the real broker: fixed dead letters are listed by reason, topic and time, shown whole, and
replayed to their original topic with their key, bytes and headers plus the replay marker."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from parley_common.cli import run
from parley_common.events.dlq import DeadLetter
from parley_common.kafka import EventPublisher, make_broker
from parley_common.settings import InfraSettings
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES

KEY = b"acme|wa-main|15550001111"
VALUE = b'{"type": "parley.message.received", "schema_version": 1, "half": "a record no consumer could read"}'
HEADERS = {"ce_id": "0b5f3c0e-0000-4000-8000-000000000001", "ce_type": "parley.message.received",
           "ce_correlationid": "corr-fixed", "ce_tenantid": "acme"}
WHEN = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def letter(namespace: str, reason: str, occurred_at: datetime, source_topic: str | None = None) -> DeadLetter:
    return DeadLetter(
        occurred_at=occurred_at, tenant_id="acme", correlation_id="corr-fixed", service="router",
        source_topic=source_topic or INBOUND_MESSAGES.name(namespace), partition=4, offset=17, reason=reason,
        detail="1 error(s); first at parts: Field required", original_key_base64=base64.b64encode(KEY).decode(),
        original_value_base64=base64.b64encode(VALUE).decode(), original_headers=HEADERS,
    )


async def cli(settings: InfraSettings, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await run(["dlq", *argv[:1], "--bootstrap", settings.kafka_bootstrap, "--namespace", settings.namespace,
                      *argv[1:]], out, err)
    return code, out.getvalue(), err.getvalue()


async def publish(settings: InfraSettings, *letters: DeadLetter) -> None:
    broker = make_broker(settings.kafka_bootstrap, "test")
    await broker.connect()
    try:
        publisher = EventPublisher(broker, settings.namespace)
        for one in letters:
            await publisher.publish(one, DEAD_LETTERS)
    finally:
        await broker.stop()


async def replayed_records(settings: InfraSettings) -> list[Any]:
    consumer = AIOKafkaConsumer(INBOUND_MESSAGES.name(settings.namespace), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=f"replay-reader-{settings.namespace}")
    await consumer.start()
    try:
        return [await asyncio.wait_for(consumer.getone(), 20)]
    finally:
        await consumer.stop()


async def test_list_show_and_replay_a_fixed_dead_letter(kafka_topics: InfraSettings) -> None:
    namespace = kafka_topics.namespace
    now = datetime.now(UTC)
    await publish(kafka_topics,
                  letter(namespace, "invalid_event", now - timedelta(hours=1)),
                  letter(namespace, "unknown_channel", WHEN),
                  letter(namespace, "malformed_json", now, source_topic="webhooks/whatsapp/wa-main"))

    code, out, err = await cli(kafka_topics, "list", "--reason", "invalid_event")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1 and "\tinvalid_event\t" in lines[0] and "1 matching" in err, err
    ref = lines[0].split("\t")[0]

    code, out, _ = await cli(kafka_topics, "list", "--topic", "parley.inbound.messages.v1", "--json")
    assert code == 0 and sorted(json.loads(line)["reason"] for line in out.splitlines()) == [
        "invalid_event", "unknown_channel"]
    code, out, _ = await cli(kafka_topics, "list", "--since", "2d")
    assert code == 0 and [line.split("\t")[4] for line in out.splitlines()] == ["invalid_event", "malformed_json"]
    code, out, _ = await cli(kafka_topics, "list", "--until", "2026-01-06T00:00:00Z", "--limit", "5")
    assert code == 0 and [line.split("\t")[4] for line in out.splitlines()] == ["unknown_channel"]

    code, out, _ = await cli(kafka_topics, "show", ref)
    shown = json.loads(out)
    assert code == 0 and shown["ref"] == ref and shown["original_key"] == KEY.decode()
    assert shown["original_value"] == json.loads(VALUE) and shown["original_headers"] == HEADERS

    code, out, err = await cli(kafka_topics, "replay", ref)
    assert code == 0, err
    assert out == f"replayed {ref} (invalid_event) to {INBOUND_MESSAGES.name(namespace)}\n"
    [record] = await replayed_records(kafka_topics)
    headers = {name: value.decode() for name, value in record.headers}
    assert record.key == KEY and record.value == VALUE
    assert {name: headers[name] for name in HEADERS} == HEADERS
    assert headers["parley_replay_of"] == f"{DEAD_LETTERS.name(namespace)}:{ref}"
    assert datetime.fromisoformat(headers["parley_replayed_at"]) >= now


async def test_replay_refuses_what_is_no_record_and_an_empty_selection(kafka_topics: InfraSettings) -> None:
    await publish(kafka_topics, letter(kafka_topics.namespace, "malformed_json", datetime.now(UTC),
                                       source_topic="webhooks/whatsapp/wa-main"))
    code, out, err = await cli(kafka_topics, "replay", "--reason", "malformed_json")
    assert code == 1 and out == "" and "not a topic of this deployment" in err
    code, _, err = await cli(kafka_topics, "replay")
    assert code == 2 and "replay what?" in err
    code, _, err = await cli(kafka_topics, "show", "0:999999")
    assert code == 2 and "no dead letter at 0:999999" in err
    code, _, err = await cli(kafka_topics, "list", "--since", "yesterday")
    assert code == 2 and "--since/--until" in err


def test_the_console_script_answers(infra_settings: InfraSettings) -> None:
    parley = Path(sys.executable).with_name("parley")
    done = subprocess.run([str(parley), "dlq", "list", "--bootstrap", infra_settings.kafka_bootstrap,
                           "--namespace", infra_settings.namespace], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and f"no topic {infra_settings.namespace}.parley.dlq.v1" in done.stderr
