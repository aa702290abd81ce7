"""The driver's own CPU per database command (issue 17): PyMongo's async client as shipped against the same client
with its reply awaited directly (`parley_common.mongo_seams.replies_awaited_directly`, which every service applies),
in alternated rounds in one process, on the test-profile database. Measured: this process's CPU per command (the
driver's Python and its system calls; the database's own CPU is not counted), for a `find_one` by `_id` that finds
nothing and for an unordered bulk write of two small inserts (ingest's identities' shape).

    .venv/bin/python bench/mongo_driver.py                 # 5 rounds of 1,500 commands per shape and variant"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import InsertOne
from pymongo.asynchronous import pool
from pymongo.pool_shared import _CancellationContext

from parley_common import mongo_seams
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings

STOCK = (getattr(pool, "async_sendall"), getattr(pool, "async_receive_message"),  # noqa: B009
         _CancellationContext.cancel)


def use(patched: bool) -> None:
    if patched:
        mongo_seams.replies_awaited_directly()
        return
    setattr(pool, "async_sendall", STOCK[0])  # noqa: B010
    setattr(pool, "async_receive_message", STOCK[1])  # noqa: B010
    setattr(_CancellationContext, "cancel", STOCK[2])  # noqa: B010


async def cpu_per_call(call: Callable[[], Awaitable[Any]], count: int) -> float:
    for _ in range(50):  # connections and caches warm
        await call()
    started = time.process_time()
    for _ in range(count):
        await call()
    return (time.process_time() - started) / count * 1e6


async def main(rounds: int, count: int) -> None:
    settings = InfraSettings(jwt_secret="bench-secret-of-at-least-32-bytes-long")
    client = mongo_client(settings.mongo_uri, "parley-bench")
    use(False)  # mongo_client applied it: measured from the driver as shipped
    database = f"bench_driver_{uuid.uuid4().hex[:8]}"
    docs = client[database]["docs"]

    async def find() -> None:
        await docs.find_one({"_id": "absent"})

    async def insert_two() -> None:
        await docs.bulk_write([InsertOne({"_id": uuid.uuid4().hex, "rank": "a"}),
                               InsertOne({"_id": uuid.uuid4().hex, "rank": "b"})], ordered=False)

    results: dict[tuple[str, bool], list[float]] = {}
    try:
        for _ in range(rounds):
            for patched in (False, True):
                use(patched)
                for name, call in (("find_one", find), ("bulk_write of 2 inserts", insert_two)):
                    results.setdefault((name, patched), []).append(await cpu_per_call(call, count))
    finally:
        await client.drop_database(database)
        await client.close()
    print(f"Client CPU per command (µs), {rounds} alternated rounds of {count}: median (each round)")
    for name in ("find_one", "bulk_write of 2 inserts"):
        for patched in (False, True):
            runs = results[(name, patched)]
            label = "reply awaited directly" if patched else "as shipped"
            print(f"  {name:24s} {label:24s} {statistics.median(runs):6.0f}  ({', '.join(f'{r:.0f}' for r in runs)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=1500)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.count))
