"""The fault schedule: under a steady stream of signed webhooks and agent replies (fault_stream.py), kill -9 each
service in turn and restart it, kill the cache (Redis restarts empty: it is a cache), stall the database
(SIGSTOP, SIGCONT) and stop a service with SIGTERM as a rolling deploy does (it must exit within the Kubernetes
grace period). After each fault: every accepted webhook on exactly one timeline exactly once, one contact per
customer, every accepted reply at the provider at most once with an outcome, every service ready again within
READY_BOUND_S, and webhooks accepted again. The short schedule runs in `make test`; the long one, in
`make test-long` beside it, kills the broker and the database (each restarted) and stops every other service
with SIGTERM; and, also in `make test-long`, every service is stopped with SIGTERM under four streams at once
(a rolling deploy under heavy load), each bound to exit cleanly within the grace period deploy/k8s gives it (less
the preStop pause). Each fault's counts and times are printed (`pytest -s`) and kept in docs/architecture.md.
The cache's restart under a staffed desk (capacity, presence, de-duplication) is cache_restart.py, outbound's
projections rebuilt after it projection_rebuild.py, on the same system."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from cache_restart import restart_cache_under_a_desk
from e2e_system import SERVICES, System, kill_hard, restart, wait_ready
from fault_servers import kill_server, local_server, stall, start_again
from fault_stream import Stream
from projection_rebuild import restart_cache_under_outbound

READY_BOUND_S = 60.0  # process start → ready, imports included; the aim is 10 s (measured: docs/architecture.md)
STALL_S = 3.0
MANIFESTS = Path(__file__).parents[2] / "deploy" / "k8s" / "base"
# The local broker writes what it holds to disk about twice a second: a kill -9 loses the records it acknowledged
# in the last ~0.5 s (measured; docs/architecture.md). Kafka as deployed (3 replicas, min.insync.replicas 2,
# acks=all) loses none. So the stream is quiet for a while before the broker's kill, and the invariants are those
# of a broker that keeps what it acknowledged.
QUIET_BEFORE_BROKER_KILL_S = 1.5
SHORT = (*SERVICES, "cache", "database-stall", "router-sigterm")
# `make test-long` runs the short schedule too: the long one adds what it lacks (under 10 minutes on its own)
LONG = ("broker", "database", *(f"{name}-sigterm" for name in SERVICES if name != "router"), "database", "broker",
        "database")
# A rolling deploy under heavy load: every service stopped with SIGTERM while HEAVY_WRITERS streams run at once
# (the short schedule runs one)
HEAVY_SIGTERMS = tuple(f"{name}-sigterm" for name in SERVICES)
HEAVY_WRITERS = 4


def shutdown_budget_s(service: str) -> float:
    """What Kubernetes leaves a pod between SIGTERM and SIGKILL, as deploy/k8s configures it: the grace period
    less the preStop pause, which runs first and counts against it."""
    manifests = yaml.safe_load_all((MANIFESTS / service / "workload.yaml").read_text())
    pod = next(doc for doc in manifests if doc["kind"] == "Deployment")["spec"]["template"]["spec"]
    pause = pod["containers"][0].get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return float(pod["terminationGracePeriodSeconds"]) - (float(pause[1]) if pause[:1] == ["sleep"] else 0.0)


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
        budget = shutdown_budget_s(name)
        try:
            process.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running {budget:.0f}s after SIGTERM: Kubernetes kills it") from None
        print(f"{name} stopped {time.monotonic() - stopping:.1f}s after SIGTERM")
        # uvicorn re-raises the signal once it has shut down cleanly (so the exit status tells it was stopped):
        # a clean stop is that status after its last words, not a death by the signal halfway
        finished = f"Finished server process [{process.pid}]" in system.services[name].log.read_text(errors="replace")
        assert process.returncode in (0, -signal.SIGTERM) and finished, (
            f"{name} exited {process.returncode} on SIGTERM, shutdown finished: {finished}\n{system.logs()}")
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


async def run_schedule(system: System, endpoints: dict[str, str], schedule: tuple[str, ...],
                       writers: int = 1) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        for fault in schedule:
            stream = Stream.of(system, client, customers=6 * writers)
            stop = asyncio.Event()
            began = time.monotonic()
            flowing = asyncio.create_task(stream.run(stop, writers))
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
            rate = stream.accepted_webhooks() / (settled - began)
            counts = await stream.settled()
            print(f"fault {fault}: ready {ready_s:.1f}s after restart, settled {time.monotonic() - settled:.1f}s "
                  f"later; {counts}; {rate:.1f} webhooks accepted/s over {settled - began:.0f}s")
            assert ready_s < READY_BOUND_S, f"{fault}: ready after {ready_s:.1f}s"
            assert stream.accepted_webhooks() > accepted_before, f"{fault}: nothing accepted once ready again"


@pytest.mark.timeout(420)  # 155-160 s measured at a load average of ~20; 183 s at 18 hit the default 180 s
def test_short_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, SHORT))


def test_after_the_cache_restarts_empty_nobody_is_offered_over_capacity_and_nothing_doubles(
        system: System, infra_endpoints: dict[str, str]) -> None:
    held = asyncio.run(restart_cache_under_a_desk(system, infra_endpoints))
    print(f"after the cache restarted empty: {held}")


def test_after_the_cache_restarts_empty_outbound_rebuilds_its_projections_and_refuses_nothing_it_should_send(
        system: System, infra_endpoints: dict[str, str]) -> None:
    outcome = asyncio.run(restart_cache_under_outbound(system, infra_endpoints))
    print(f"after the cache restarted empty, outbound: {outcome}")


@pytest.mark.slow_soak
@pytest.mark.timeout(1500)
def test_long_fault_schedule(system: System, infra_endpoints: dict[str, str]) -> None:
    asyncio.run(run_schedule(system, infra_endpoints, LONG))


@pytest.mark.slow_soak
@pytest.mark.timeout(1500)
def test_every_service_stopped_with_sigterm_under_heavy_load(system: System, infra_endpoints: dict[str, str]) -> None:
    """Every rolling deploy: each service in turn gets SIGTERM while four streams run at once; it must exit
    cleanly within what deploy/k8s leaves it, and nothing it accepted may be lost or doubled."""
    asyncio.run(run_schedule(system, infra_endpoints, HEAVY_SIGTERMS, writers=HEAVY_WRITERS))
