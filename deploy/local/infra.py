"""Start, stop and wait for the local infrastructure: a Kafka-protocol broker (noida-db), a MongoDB-wire
server (SecantusDB) and Redis (Debian's redis-server). No Docker engine needed.

    python deploy/local/infra.py start  [--profile run|test] [--fresh]
    python deploy/local/infra.py stop   [--profile run|test]
    python deploy/local/infra.py status [--profile run|test]
    python deploy/local/infra.py env    [--profile run|test]   # prints the PARLEY_* variables

Each profile has its own ports and data folder under .run/<profile>/, so `make test` never touches what
`make run` started. Ports can be overridden with PARLEY_LOCAL_{KAFKA,MONGO,REDIS}_PORT. Starting twice finds
the running servers; a port held by another program is reported, not fought over. PARLEY_LOCAL_MONGO_COMMAND_CPU
names a file the database then writes its CPU by command shape to (benchmarks: deploy/local/mongo_command_cpu.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROFILES = {
    "run": {"kafka": 19092, "mongo": 27117, "redis": 16379},
    "test": {"kafka": 29092, "mongo": 27217, "redis": 26379},
}
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    data_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.data_dir.parent / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    def command(self) -> list[str]:
        if self.name == "kafka":
            return [str(BIN / "noida-db"), "start", "--data-dir", str(self.data_dir), "--only", "kafka",
                    "--kafka-port", str(self.port)]
        if self.name == "mongo":
            command_cpu = os.environ.get("PARLEY_LOCAL_MONGO_COMMAND_CPU")  # benchmarks: deploy/local/mongo_command_cpu
            return [sys.executable, str(REPO / "deploy/local/mongo_server.py"), "--port", str(self.port),
                    "--storage-path", str(self.data_dir), *(["--command-cpu", command_cpu] if command_cpu else [])]
        redis = shutil.which("redis-server")
        if redis is None:
            raise SystemExit("infra: redis-server is not installed; run deploy/local/bootstrap.sh")
        return [redis, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.data_dir), "--daemonize", "no"]


def servers(profile: str) -> list[Server]:
    base = REPO / ".run" / profile
    return [
        Server(name, int(os.environ.get(f"PARLEY_LOCAL_{name.upper()}_PORT", default)), base / name)
        for name, default in PROFILES[profile].items()
    ]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running_pid(server: Server) -> int | None:
    try:
        pid = int(server.pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start(server: Server, fresh: bool) -> None:
    if running_pid(server) is not None:
        print(f"  {server.name:6} already running on 127.0.0.1:{server.port}")
        return
    if port_open(server.port):
        raise SystemExit(
            f"infra: port {server.port} for {server.name} is taken by another program; stop it or set "
            f"PARLEY_LOCAL_{server.name.upper()}_PORT to a free port"
        )
    if fresh and server.data_dir.exists():
        shutil.rmtree(server.data_dir)
    server.data_dir.mkdir(parents=True, exist_ok=True)
    with server.log_file.open("ab") as log:
        process = subprocess.Popen(server.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=server.data_dir)
    server.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_open(server.port):
        if process.poll() is not None:
            raise SystemExit(f"infra: {server.name} exited at start; see {server.log_file}")
        if time.monotonic() > deadline:
            raise SystemExit(f"infra: {server.name} did not open port {server.port} in {START_TIMEOUT_S:.0f}s")
        time.sleep(0.1)
    print(f"  {server.name:6} started on 127.0.0.1:{server.port} (pid {process.pid})")


def alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap it when this process started it (`make run`)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop(server: Server) -> None:
    pid = running_pid(server)
    if pid is None:
        server.pid_file.unlink(missing_ok=True)
        return
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)
    server.pid_file.unlink(missing_ok=True)
    print(f"  {server.name:6} stopped")


def environment(profile: str) -> dict[str, str]:
    ports = {server.name: server.port for server in servers(profile)}
    return {
        "PARLEY_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        # no retryable writes on SecantusDB (a deployed MongoDB keeps them): docs/architecture.md, the local database
        "PARLEY_MONGO_URI": f"mongodb://127.0.0.1:{ports['mongo']}/?retryWrites=false&directConnection=true",
        "PARLEY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status", "env"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="run")
    parser.add_argument("--fresh", action="store_true", help="start from empty data folders")
    args = parser.parse_args()
    if args.action == "start":
        print(f"infra ({args.profile}):")
        for server in servers(args.profile):
            start(server, args.fresh)
    elif args.action == "stop":
        for server in servers(args.profile):
            stop(server)
    elif args.action == "status":
        for server in servers(args.profile):
            state = "running" if running_pid(server) else "stopped"
            print(f"{server.name:6} {state:8} 127.0.0.1:{server.port}")
    else:
        for key, value in environment(args.profile).items():
            print(f"export {key}='{value}'")


if __name__ == "__main__":
    main()
