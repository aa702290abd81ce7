"""The fault schedule: under a steady stream of signed webhooks and agent replies (fault_stream.py), kill -9 each
service in turn and restart it, kill the cache (Redis restarts empty: it is a cache), stall the database
(SIGSTOP, SIGCONT) and stop a service with SIGTERM as a rolling deploy does (it must exit within the Kubernetes
grace period). After each fault: every accepted webhook on exactly one timeline exactly once, one contact per
customer, every accepted reply at the provider at most once with an outcome, every service ready again within
READY_BOUND_S. The short schedule runs in `make test`; the long one (every fault, several rounds) in
`make test-long`. Each fault's counts and times are printed (`pytest -s`) and kept in docs/architecture.md."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from e2e_system import SERVICES, System, kill_hard, restart, wait_ready
from fault_stream import Stream

sys.path.insert(0, str(Path(__file__).parents[2] / "deploy" / "local"))
import infra

READY_BOUND_S = 60.0  # process start → ready, imports included; the aim is 10 s (measured: docs/architecture.md)
STALL_S = 3.0
GRACE_S = 75.0  # deploy/k8s terminationGracePeriodSeconds: SIGTERM → SIGKILL
SHORT = (*SERVICES, "cache", "database-stall", "router-sigterm")
LONG = (*SHORT, *(f"{name}-sigterm" for name in SERVICES), *SHORT)


def _server(endpoints: dict[str, str], name: str) -> infra.Server:
    """The test-profile server behind an endpoint (its port), with its pid file."""
    port = int(endpoints[{"kafka": "PARLEY_KAFKA_BOOTSTRAP", "mongo": "PARLEY_MONGO_URI",
                          "redis": "PARLEY_REDIS_URL"}[name]].rsplit(":", 1)[1].split("/")[0])
    found = [server for server in infra.servers("test") if server.name == name]
    server = infra.Server(name, port, found[0].data_dir)
    if infra.running_pid(server) is None:
        pytest.skip(f"the {name} server was not started by deploy/local/infra.py: cannot kill it")
    return server


def _kill_and_restart_server(server: infra.Server) -> None:
    pid = infra.running_pid(server)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    while infra.alive(pid):
        time.sleep(0.05)
    infra.start(server, fresh=False)


def _stall(server: infra.Server) -> None:
    pid = infra.running_pid(server)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(STALL_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def inject(fault: str, system: System, endpoints: dict[str, str]) -> float:
    """Do the fault; answers the seconds from the restart (or the end of the stall) to every service ready."""
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
    action: Callable[[infra.Server], None] = _stall if fault == "database-stall" else _kill_and_restart_server
    action(_server(endpoints, {"cache": "redis", "database-stall": "mongo", "broker": "kafka",
                               "database": "mongo"}[fault]))
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
            ready_s = await asyncio.to_thread(inject, fault, system, endpoints)
            await asyncio.sleep(1.5)
            stop.set()
            await flowing
            settled = time.monotonic()
            counts = await stream.settled()
            print(f"fault {fault}: ready {ready_s:.1f}s after restart, settled {time.monotonic() - settled:.1f}s "
                  f"later; {counts}")
            assert ready_s < READY_BOUND_S, f"{fault}: ready after {ready_s:.1f}s"
            assert counts["accepted_webhooks"] > 0


@pytest.mark.timeout(420)  # 155-160 s measured at a load average of ~20; 183 s at 18 hit the default 180 s
def test_short_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, SHORT))


@pytest.mark.slow_soak
@pytest.mark.timeout(1200)
def test_long_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, LONG))
