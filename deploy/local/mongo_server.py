"""Runs the local MongoDB-wire-protocol server (SecantusDB, a one-member replica set) in the foreground
until SIGTERM/SIGINT. In-process so the TTL sweep interval is honoured (the CLI ignores it)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from secantus import SecantusDBServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--storage-path", required=True)
    parser.add_argument("--ttl-sweep-seconds", type=float, default=5.0)
    parser.add_argument("--command-cpu", type=Path, help="write the CPU of each command shape there (benchmarks)")
    args = parser.parse_args()
    if args.command_cpu:
        import mongo_command_cpu  # beside this script

        mongo_command_cpu.install(args.command_cpu)
    server = SecantusDBServer(
        host="127.0.0.1", port=args.port, storage_path=args.storage_path, ttl_sweep_seconds=args.ttl_sweep_seconds
    )
    server.start()
    print(f"mongodb wire protocol ready on 127.0.0.1:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
