"""Fetches per record of one aiokafka consumer reading records at a steady rate from the local broker, with the
services' fetch pacing (`parley_common.kafka_seams.pace_idle_fetches`): the local broker answers an empty fetch at
once, so how often a consumer asks again between records is what its fetching costs. The consumer reads
`--topics` topics of 12 partitions (the router's events lane reads 4, outbound's projections 8); every fetch asks
every partition, so its cost grows with them. The records are published from the same process at `--rate`/s, one
at a time; the CPU per record printed is the process's (consumer and producer).

    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP
    .venv/bin/python bench/kafka_paced_consumer.py [--rate 50] [--seconds 20] [--topics 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka_idle_consumer import count_fetches, fetches  # the same fetch counter
from pydantic import SecretStr

from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.kafka_seams import IDLE_FETCH_BACKOFF_MS, pace_idle_fetches
from parley_common.settings import InfraSettings
from parley_common.topics import ALL_TOPICS


async def measure(bootstrap: str, topics: list[str], rate: float, seconds: float) -> None:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=f"paced-{uuid.uuid4().hex}",
                                auto_offset_reset="latest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    sent: dict[bytes, float] = {}
    lags: list[float] = []
    count = int(rate * seconds)
    all_read = asyncio.Event()
    try:
        await consumer.getmany(timeout_ms=2000)  # joined and fetching

        async def read() -> None:
            while True:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    now = time.perf_counter()
                    lags.extend(now - sent.pop(record.value, now) for record in records if record.value)
                if len(lags) >= count:
                    all_read.set()

        reader = asyncio.create_task(read())
        await asyncio.sleep(1)
        fetches[0], cpu, started = 0, time.process_time(), time.perf_counter()
        for n in range(count):
            value = f"{n}-{uuid.uuid4().hex}".encode()
            sent[value] = time.perf_counter()
            await producer.send_and_wait(topics[n % len(topics)], value, key=value)
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.perf_counter()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_read.wait(), 10)
        elapsed = time.perf_counter() - started
        reader.cancel()
        received = len(lags)
        print(f"{received}/{count} records at {rate:.0f}/s over {len(topics)} topics ({len(topics) * 12} partitions): "
              f"{fetches[0] / max(1, received):.2f} fetches per record, {fetches[0] / elapsed:.0f} fetches/s, "
              f"process CPU {(time.process_time() - cpu) / max(1, received) * 1000:.2f} ms per record; "
              f"stored → read p50 {statistics.median(lags) * 1000:.1f} ms, "
              f"p99 {sorted(lags)[int(0.99 * (received - 1))] * 1000:.1f} ms")
    finally:
        await producer.stop()
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--topics", type=int, default=4)
    args = parser.parse_args()
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)))  # only the broker's address is used
    namespace = f"paced{uuid.uuid4().hex[:6]}"
    chosen = [topic for topic in ALL_TOPICS if topic.partitions == 12][:args.topics]
    await ensure_topics(infra.kafka_bootstrap, namespace, chosen)
    count_fetches()
    pace_idle_fetches(IDLE_FETCH_BACKOFF_MS)
    try:
        await measure(infra.kafka_bootstrap, [topic.name(namespace) for topic in chosen], args.rate, args.seconds)
    finally:
        await drop_namespace_topics(infra.kafka_bootstrap, namespace)


if __name__ == "__main__":
    asyncio.run(main())
