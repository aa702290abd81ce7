"""CPU of idle aiokafka consumers against the local broker, and of each fetch sent: the local broker answers an
empty fetch at once instead of long-polling for `fetch_max_wait_ms`, so an idle process costs what its fetches cost
times how often it sends them (`parley_common.kafka_seams.pace_idle_fetches`: ~24/s at the 40 ms bound, one fetch
for all of a process's consumers once they are idle a while: `IdleWatch`).

`--consumers` consumers (one group and one topic each) read topics of each `--partitions` count in turn (the services'
lanes read 12 to 96), on uvloop as the services run (`--asyncio` for the standard loop), the way FastStream's batch
subscriber does (`getmany` with a 1 s wait, in a loop). CPU is the process's (`time.process_time`) over the window,
per fetch request sent (the consumers' own and the watcher's). `--pickup N` then stores N records,
0.2 to 0.5 s apart, on the consumers' topics in turn, and prints how long each took from stored to read. `--profile`
prints cProfile's busiest functions of one window per partition count; `--pauses` compares pauses (0: unpaced);
`--rebuild-fetches` leaves out `kafka_seams.reuse_unchanged_fetches`, which the services apply (before/after), and
with it `fetches_coded_directly` unless `--coded-directly` is given: each fetch then costs what one costs while records
flow (its positions moved, so nothing is reused), coded by aiokafka or directly.

    eval "$(.venv/bin/python deploy/local/infra.py env --profile test)"; export PARLEY_KAFKA_BOOTSTRAP
    .venv/bin/python bench/kafka_idle_consumer.py [--partitions 12,48,96] [--consumers 2] [--seconds 8] [--rounds 2]
        [--pickup 40] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import random
import secrets
import time
import uuid
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
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
read_at: dict[bytes, float] = {}


def count_fetches() -> None:
    send = AIOKafkaClient.send

    async def counting(self: AIOKafkaClient, node_id: int, request: Any, **options: Any) -> Any:
        if isinstance(request, FetchRequest):
            fetches[0] += 1
        return await send(self, node_id, request, **options)

    AIOKafkaClient.send = counting


async def idle_cpu(bootstrap: str, topics: list[str], pause_ms: int, seconds: float, profile: bool,
                   pickups: int) -> None:
    """Prints the CPU of one consumer of each of `topics` idle for `seconds` after their join, then the pick-ups."""
    pace_idle_fetches(pause_ms)
    consumers = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"idle-{uuid.uuid4().hex}")
                 for topic in topics]
    for consumer in consumers:
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)

    async def poll(consumer: AIOKafkaConsumer) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=256)).values():
                read_at.update({record.value or b"": time.monotonic() for record in records})

    try:
        async with contextlib.AsyncExitStack() as polling:
            for consumer in consumers:
                await polling.enter_async_context(running(poll(consumer)))
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
            print(f"{len(topics)} x {topics[0].rsplit('.', 1)[1].split('-')[0]:>4} pause {pause_ms:>3} ms: "
                  f"{cpu / elapsed * 100:5.2f} % of a core, {fetches[0] / elapsed:5.1f} fetches/s, "
                  f"{cpu * per_fetch:.3f} ms of CPU per fetch (user {user * per_fetch:.2f}, system "
                  f"{system * per_fetch:.2f})", flush=True)
            if profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
                print(out.getvalue())
            if pickups:
                await pick_up(bootstrap, topics, pickups)
    finally:
        for consumer in consumers:
            await consumer.stop()


async def pick_up(bootstrap: str, topics: list[str], count: int) -> None:
    """Stores `count` records at idle consumers (0.2 to 0.5 s apart, the topics in turn) and prints stored → read."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    waits = []
    try:
        for n in range(count):
            await asyncio.sleep(random.uniform(0.2, 0.5))
            value = uuid.uuid4().bytes
            await producer.send_and_wait(topics[n % len(topics)], value)
            stored = time.monotonic()
            while value not in read_at:  # noqa: ASYNC110 - fed by the consumers' poll tasks
                await asyncio.sleep(0.001)
            waits.append((read_at[value] - stored) * 1000)
    finally:
        await producer.stop()
    waits.sort()
    print(f"  picked up {count} records stored at idle consumers: p50 {waits[len(waits) // 2]:.0f} ms, "
          f"p90 {waits[int(len(waits) * 0.9)]:.0f} ms, max {waits[-1]:.0f} ms", flush=True)


async def main(args: argparse.Namespace) -> None:
    infra = InfraSettings(jwt_secret=SecretStr(secrets.token_hex(32)))  # only the broker's address is used
    namespace = f"idle{uuid.uuid4().hex[:6]}"
    topics = {count: [Topic(f"p{count}-{n}", INBOUND_MESSAGES.payload, count, INBOUND_MESSAGES.key, "idle fetches")
                      for n in range(args.consumers)] for count in args.partitions}
    await ensure_topics(infra.kafka_bootstrap, namespace, [topic for each in topics.values() for topic in each])
    if args.coded_directly:
        fetches_coded_directly()
    if not args.rebuild_fetches:
        reuse_unchanged_fetches()
    count_fetches()
    try:
        for _ in range(args.rounds):
            for each in topics.values():
                for pause_ms in args.pauses:
                    await idle_cpu(infra.kafka_bootstrap, [topic.name(namespace) for topic in each], pause_ms,
                                   args.seconds, args.profile, args.pickup)
    finally:
        await drop_namespace_topics(infra.kafka_bootstrap, namespace)


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=numbers, default=[12, 48, 96], help="partition counts, one topic each")
    parser.add_argument("--pauses", type=numbers, default=[IDLE_FETCH_BACKOFF_MS], help="longest idle pauses (ms)")
    parser.add_argument("--consumers", type=int, default=1, help="consumers in the process, one topic each")
    parser.add_argument("--pickup", type=int, default=0, help="records stored at the idle consumers, timed to read")
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
