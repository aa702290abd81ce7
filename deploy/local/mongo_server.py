"""Runs the local MongoDB-wire-protocol server (SecantusDB, a one-member replica set) in the foreground
until SIGTERM/SIGINT. In-process so the TTL sweep interval is honoured (the CLI ignores it), every commit is
written through to the operating system (`commits_written_through`) and no oplog is kept (`without_oplog`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import secantus.storage
from secantus import SecantusDBServer

# SecantusDB journals every commit in WiredTiger's log, but by default writes the log to the OS only now and then:
# a kill -9 loses the last ~15 ms of acknowledged writes unless a write asks for `j: true`, which commits with an
# fsync (docs/architecture.md, "What the local servers keep on a kill -9"). Written through on every commit, with
# no fsync (`method=none`), a kill -9 loses nothing acknowledged — with or without `j`, multi-document
# transactions included — and no write waits for the disk: the fsync only guards against a power cut, which
# this local, disposable server need not survive. The services still ask for `j: true` (DURABLE_WRITES): a
# deployed MongoDB needs it, and here it costs no more than any write (docs/benchmarks.md, "The database's cost
# per message").
SECANTUS_JOURNAL = "transaction_sync=(enabled=false,method=fsync)"
WRITTEN_THROUGH = "transaction_sync=(enabled=true,method=none)"


@contextlib.contextmanager
def commits_written_through() -> Iterator[None]:
    """While a SecantusDB server is built, its WiredTiger connection opens with every commit written through to
    the OS. SecantusDB has no setting for it (its `sync_on_commit` is the fsync); a SecantusDB whose storage
    configuration no longer reads as expected refuses to start rather than run with another durability."""
    wiredtiger = secantus.storage.wt
    open_connection = wiredtiger.wiredtiger_open

    def open_written_through(home: str, config: str) -> Any:
        if SECANTUS_JOURNAL not in config:
            raise RuntimeError(f"SecantusDB's storage configuration changed, review commits_written_through: {config}")
        return open_connection(home, config.replace(SECANTUS_JOURNAL, WRITTEN_THROUGH))

    wiredtiger.wiredtiger_open = open_written_through
    try:
        yield
    finally:
        wiredtiger.wiredtiger_open = open_connection


def without_oplog(server: SecantusDBServer) -> None:
    """No oplog entry per document written. SecantusDB keeps its oplog only for change streams (a standalone
    server keeps none), and Parley opens no change stream (tests/deploy/test_local_database.py holds the code to
    that); the replica-set persona stays, which multi-document transactions (contacts' merge) need. Each entry
    cost the server ~0.03 ms per inserted and ~0.1 ms per updated document (docs/benchmarks.md, "The database's
    cost per message"). Call before the server starts."""
    if not isinstance(getattr(server.storage, "enable_oplog", None), bool):
        raise RuntimeError("SecantusDB's storage no longer has enable_oplog, review without_oplog")
    server.storage.enable_oplog = False


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
    with commits_written_through():
        server = SecantusDBServer(
            host="127.0.0.1", port=args.port, storage_path=args.storage_path, ttl_sweep_seconds=args.ttl_sweep_seconds
        )
    without_oplog(server)
    server.start()
    print(f"mongodb wire protocol ready on 127.0.0.1:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
