"""The fault schedule: under a steady stream of signed webhooks and agent replies (fault_stream.py), kill -9 each
service in turn and restart it, kill the cache (Redis restarts empty: it is a cache), stall the database
(SIGSTOP, SIGCONT) and stop a service with SIGTERM as a rolling deploy does (it must exit within the Kubernetes
grace period). After each fault: every accepted webhook on exactly one timeline exactly once, one contact per
customer, every accepted reply at the provider at most once with an outcome, every service ready again within
READY_BOUND_S, and webhooks accepted again. The short schedule runs in `make test`; the long one, in
`make test-long` beside it, kills the broker and the database (each restarted) and stops every other service
with SIGTERM. Each fault's
counts and times are printed (`pytest -s`) and kept in docs/architecture.md. The cache's restart under a staffed
desk (capacity, presence, de-duplication) is cache_restart.py, on the same system."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import httpx
import pytest
from cache_restart import restart_cache_under_a_desk
from e2e_system import SERVICES, System, kill_hard, restart, wait_ready
from fault_servers import kill_server, local_server, stall, start_again
from fault_stream import Stream

READY_BOUND_S = 60.0  # process start → ready, imports included; the aim is 10 s (measured: docs/architecture.md)
STALL_S = 3.0
GRACE_S = 75.0  # deploy/k8s terminationGracePeriodSeconds: SIGTERM → SIGKILL
# The local broker writes what it holds to disk about twice a second: a kill -9 loses the records it acknowledged
# in the last ~0.5 s (measured; docs/architecture.md). Kafka as deployed (3 replicas, min.insync.replicas 2,
# acks=all) loses none. So the stream is quiet for a while before the broker's kill, and the invariants are those
# of a broker that keeps what it acknowledged.
QUIET_BEFORE_BROKER_KILL_S = 1.5
SHORT = (*SERVICES, "cache", "database-stall", "router-sigterm")
# `make test-long` runs the short schedule too: the long one adds what it lacks (under 10 minutes on its own)
LONG = ("broker", "database", *(f"{name}-sigterm" for name in SERVICES if name != "router"), "database", "broker",
        "database")


def inject(fault: str, system: System, endpoints: dict[str, str], killed: Callable[[], None] = lambda: None) -> float:
    """Do the fault (`killed` is called once a server is dead, before its restart); answers the seconds from the
    restart (or the end of the stall) to every service ready."""
    if fault in SERVICES:
        kill_hard(system.services[fault])
        return restart(system, fault)
    if fault.endswith("-sigterm"):  # a rolling deploy: it must finish or hand back its work within the grace
        name = fault.removesuffix("-sigterm")
        stopping = time.monotonic()
        process = system.services[name].process
        assert process is not None
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=GRACE_S)
        print(f"{name} stopped {time.monotonic() - stopping:.1f}s after SIGTERM")
        return restart(system, name)
    server = local_server(endpoints, {"cache": "redis", "database-stall": "mongo", "broker": "kafka",
                                      "database": "mongo"}[fault])
    if fault == "database-stall":
        stall(server, STALL_S)
    else:
        kill_server(server)
        killed()
        start_again(server)
    back = time.monotonic()
    wait_ready(system)
    return time.monotonic() - back


async def run_schedule(system: System, endpoints: dict[str, str], schedule: tuple[str, ...]) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        for fault in schedule:
            stream = Stream.of(system, client)
            stop = asyncio.Event()
            flowing = asyncio.create_task(stream.run(stop))
            await asyncio.sleep(1.5)
            if fault == "broker":
                stream.quiet = True
                await asyncio.sleep(QUIET_BEFORE_BROKER_KILL_S)
            ready_s = await asyncio.to_thread(inject, fault, system, endpoints, stream.resume)
            accepted_before = stream.accepted_webhooks()
            await asyncio.sleep(1.5)
            stop.set()
            await flowing
            settled = time.monotonic()
            counts = await stream.settled()
            print(f"fault {fault}: ready {ready_s:.1f}s after restart, settled {time.monotonic() - settled:.1f}s "
                  f"later; {counts}")
            assert ready_s < READY_BOUND_S, f"{fault}: ready after {ready_s:.1f}s"
            assert stream.accepted_webhooks() > accepted_before, f"{fault}: nothing accepted once ready again"


@pytest.mark.timeout(420)  # 155-160 s measured at a load average of ~20; 183 s at 18 hit the default 180 s
def test_short_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, SHORT))


def test_after_the_cache_restarts_empty_nobody_is_offered_over_capacity_and_nothing_doubles(
        system: System, infra_endpoints: dict[str, str]) -> None:
    held = asyncio.run(restart_cache_under_a_desk(system, infra_endpoints))
    print(f"after the cache restarted empty: {held}")


@pytest.mark.slow_soak
@pytest.mark.timeout(1500)
def test_long_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, LONG))
