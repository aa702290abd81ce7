"""CPU of one idle aiokafka consumer (12 partitions) against the local broker, with and without the pause after an
empty fetch (`parley_common.kafka_seams.pace_idle_fetches`): the local broker answers empty fetches at once instead of
long-polling for `fetch_max_wait_ms`.

    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP
    .venv/bin/python bench/kafka_idle_consumer.py [PAUSE_MS ...]
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from pydantic import SecretStr

from parley_common.kafka import ensure_topics
from parley_common.kafka_seams import pace_idle_fetches
from parley_common.settings import InfraSettings
from parley_common.tasks import running
from parley_common.topics import INBOUND_MESSAGES

fetches = [0]


def count_fetches() -> None:
    unpaced = Fetcher._proc_fetch_request

    async def counting(self: Fetcher, *args: Any) -> bool:
        fetches[0] += 1
        result: bool = await unpaced(self, *args)
        return result

    Fetcher._proc_fetch_request = counting


async def idle_cpu(bootstrap: str, topic: str, pause_ms: int) -> None:
    pace_idle_fetches(pause_ms)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"idle-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=2000)

        async def poll() -> None:
            while True:
                await consumer.getmany(timeout_ms=1000)

        async with running(poll()):
            fetches[0], cpu, started = 0, time.process_time(), time.perf_counter()
            await asyncio.sleep(5)
            elapsed = time.perf_counter() - started
        print(f"pause {pause_ms:>3} ms: {(time.process_time() - cpu) / elapsed * 100:5.1f} % of a core, "
              f"{fetches[0] / elapsed:,.0f} fetches/s")
    finally:
        await consumer.stop()


async def main() -> None:
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)))  # only the broker's address is used
    namespace = f"idle{uuid.uuid4().hex[:6]}"
    await ensure_topics(infra.kafka_bootstrap, namespace)
    count_fetches()
    for pause_ms in [int(arg) for arg in sys.argv[1:]] or [0, 10, 20]:
        await idle_cpu(infra.kafka_bootstrap, INBOUND_MESSAGES.name(namespace), pause_ms)


if __name__ == "__main__":
    asyncio.run(main())
