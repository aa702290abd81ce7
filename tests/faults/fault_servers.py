"""The local test servers (deploy/local/infra.py, test profile) behind the endpoints, found by their pid files, and
what the fault tests do to them: kill -9, start again on the same data, or pause (SIGSTOP) and resume."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "deploy" / "local"))
import infra

ENDPOINT_OF = {"kafka": "PARLEY_KAFKA_BOOTSTRAP", "mongo": "PARLEY_MONGO_URI", "redis": "PARLEY_REDIS_URL"}


def local_server(endpoints: dict[str, str], name: str) -> infra.Server:
    """The test-profile server `name` (kafka, mongo, redis) behind its endpoint's port, with its pid file; the
    test is skipped when infra.py did not start it (containers, an installation of one's own)."""
    port = int(endpoints[ENDPOINT_OF[name]].rsplit(":", 1)[1].split("/")[0])
    found = [server for server in infra.servers("test") if server.name == name]
    server = infra.Server(name, port, found[0].data_dir)
    if infra.running_pid(server) is None:
        pytest.skip(f"the {name} server was not started by deploy/local/infra.py: cannot kill it")
    return server


def wait_for_snapshot_of(server: infra.Server, name: str, within: float = 30.0) -> None:
    """Until the local broker's snapshot on disk names `name` (a topic): what a kill -9 leaves it with. It writes
    the snapshot now and then, later on a loaded machine: a fixed wait let a topic be lost with the kill."""
    snapshot = Path(server.data_dir) / "kafka.json"
    deadline = time.monotonic() + within
    while not (snapshot.exists() and name.encode() in snapshot.read_bytes()):
        assert time.monotonic() < deadline, f"{name} not in the broker's snapshot within {within}s"
        time.sleep(0.2)


def kill_server(server: infra.Server) -> None:
    """kill -9: no shutdown, no flush."""
    pid = infra.running_pid(server)
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    while infra.alive(pid):
        time.sleep(0.05)


def start_again(server: infra.Server) -> None:
    """Start it on the same data; returns once its port answers."""
    infra.start(server, fresh=False)


def stall(server: infra.Server, seconds: float) -> None:
    """Freeze the server (SIGSTOP: connections stay open, nothing answers) for `seconds`, then resume it."""
    pid = infra.running_pid(server)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
