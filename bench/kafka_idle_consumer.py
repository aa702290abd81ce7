"""CPU of one idle aiokafka consumer against the local broker, and of each of its fetches: the local broker answers an
empty fetch at once instead of long-polling for `fetch_max_wait_ms`, so an idle consumer costs what its fetches cost
times how often it sends them (`parley_common.kafka_seams.pace_idle_fetches`: ~24/s at the 40 ms bound).

The consumer reads one topic of each `--partitions` count in turn (the services' lanes read 12 to 96), on uvloop as
the services run (`--asyncio` for the standard loop), the way FastStream's batch subscriber does (`getmany` with a
1 s wait, in a loop). CPU is the process's (`time.process_time`) over the window, per fetch sent. `--profile`
prints cProfile's busiest functions of one window per partition count; `--pauses` compares pauses (0: unpaced);
`--rebuild-fetches` leaves out `kafka_seams.reuse_unchanged_fetches`, which the services apply (before/after), and
with it `fetches_coded_directly` unless `--coded-directly` is given: each fetch then costs what one costs while records
flow (its positions moved, so nothing is reused), coded by aiokafka or directly.

    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP
    .venv/bin/python bench/kafka_idle_consumer.py [--partitions 12,48,96] [--seconds 8] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import time
import uuid
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import Fetcher
from pydantic import SecretStr

from parley_common.kafka import drop_namespace_topics, ensure_topics
from parley_common.kafka_seams import (
    IDLE_FETCH_BACKOFF_MS,
    fetches_coded_directly,
    pace_idle_fetches,
    reuse_unchanged_fetches,
)
from parley_common.settings import InfraSettings
from parley_common.tasks import running
from parley_common.topics import INBOUND_MESSAGES, Topic

fetches = [0]


def count_fetches() -> None:
    unpaced = Fetcher._proc_fetch_request

    async def counting(self: Fetcher, *args: Any) -> bool:
        fetches[0] += 1
        result: bool = await unpaced(self, *args)
        return result

    Fetcher._proc_fetch_request = counting


async def idle_cpu(bootstrap: str, topic: str, pause_ms: int, seconds: float, profile: bool) -> None:
    """Prints the CPU of one consumer of `topic` idle for `seconds`, after its join."""
    pace_idle_fetches(pause_ms)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"idle-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=2000)

        async def poll() -> None:
            while True:
                await consumer.getmany(timeout_ms=1000, max_records=256)

        async with running(poll()):
            await asyncio.sleep(1)  # past the join and the first positions
            profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not wall time
            if profiler:
                profiler.enable()
            fetches[0], before, cpu, started = 0, os.times(), time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            after, cpu, elapsed = os.times(), time.process_time() - cpu, time.perf_counter() - started
            if profiler:
                profiler.disable()
        user, system = after.user - before.user, after.system - before.system  # 10 ms clock ticks: a rough split
        per_fetch = 1000 / max(fetches[0], 1)
        print(f"{topic.rsplit('.', 1)[1]:>4} pause {pause_ms:>3} ms: {cpu / elapsed * 100:5.2f} % of a core, "
              f"{fetches[0] / elapsed:5.1f} fetches/s, {cpu * per_fetch:.3f} ms of CPU per fetch "
              f"(user {user * per_fetch:.2f}, system {system * per_fetch:.2f})", flush=True)
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            print(out.getvalue())
    finally:
        await consumer.stop()


async def main(args: argparse.Namespace) -> None:
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)))  # only the broker's address is used
    namespace = f"idle{uuid.uuid4().hex[:6]}"
    topics = [Topic(f"p{count}", INBOUND_MESSAGES.payload, count, INBOUND_MESSAGES.key, "idle fetches")
              for count in args.partitions]
    await ensure_topics(infra.kafka_bootstrap, namespace, topics)
    if args.coded_directly:
        fetches_coded_directly()
    if not args.rebuild_fetches:
        reuse_unchanged_fetches()
    count_fetches()
    try:
        for _ in range(args.rounds):
            for topic in topics:
                for pause_ms in args.pauses:
                    await idle_cpu(infra.kafka_bootstrap, topic.name(namespace), pause_ms, args.seconds, args.profile)
    finally:
        await drop_namespace_topics(infra.kafka_bootstrap, namespace)


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=numbers, default=[12, 48, 96], help="partition counts, one topic each")
    parser.add_argument("--pauses", type=numbers, default=[IDLE_FETCH_BACKOFF_MS], help="longest idle pauses (ms)")
    parser.add_argument("--seconds", type=float, default=8.0, help="the measured window of each consumer")
    parser.add_argument("--rounds", type=int, default=1, help="times every partition count is measured")
    parser.add_argument("--profile", action="store_true", help="cProfile each window")
    parser.add_argument("--rebuild-fetches", action="store_true",
                        help="without kafka_seams.reuse_unchanged_fetches: each fetch built, encoded and decoded anew")
    parser.add_argument("--coded-directly", action="store_true",
                        help="kafka_seams.fetches_coded_directly even with --rebuild-fetches")
    parser.add_argument("--asyncio", action="store_true", help="the standard event loop instead of uvloop")
    arguments = parser.parse_args()
    if arguments.asyncio:
        asyncio.run(main(arguments))
    else:
        uvloop.run(main(arguments))
