"""What one command costs the local database (SecantusDB) in its own CPU, by shape — the floor under the database's
CPU per message in bench/pipeline.py (issue 17). Two throwaway servers on free ports: as
SecantusDB ships (the journal written to the OS now and then; `j: true` commits with an fsync; an oplog entry per
document written; the index catalog read at every step of a write) and as deploy/local/mongo_server.py runs it
(every commit written through, no fsync; no oplog; the index catalog read once per write; a write by `_id` and
an operator finding its document by `_id`; an update rewriting only the index entries it changes),
both up at once and taking turns at
each shape (the median of the turns: a loaded machine's noise weighs on both alike). One client, one command at a
time; the server's CPU (user + system, from /proc) per command or, for a bulk insert, per document.

    .venv/bin/python bench/database_commands.py [--commands 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, MongoClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "deploy" / "local"))

from ingest_webhooks import free_port  # noqa: E402
from proc_cpu import ProcessGroups  # noqa: E402

# the services' write concern (parley_common.mongo.DURABLE_WRITES), and none
JOURNALED: dict[str, Any] = {"w": "majority", "journal": True}
UNJOURNALED: dict[str, Any] = {"w": 1}
INDEXED_FIELDS = 10  # a collection indexed like the router's conversations (about a dozen indexes)
SCANNED_DOCS = 2_000
Shape = tuple[str, Callable[[int], object], int]  # label, the command numbered n, documents per command


def serve(port: int, storage: str, ours: bool) -> None:
    """The child process: one SecantusDB server until SIGTERM."""
    from mongo_server import commits_written_through, storage_as_parley_runs_it, without_oplog
    from secantus import SecantusDBServer

    def build() -> SecantusDBServer:
        return SecantusDBServer(host="127.0.0.1", port=port, storage_path=storage)

    if ours:
        with commits_written_through():
            server = build()
        without_oplog(server)
        storage_as_parley_runs_it()
    else:
        server = build()
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


class Server:
    """A throwaway SecantusDB server on a free port, as shipped or as deploy/local runs it, with a journaled (the
    services' write concern) and an unjournaled client."""

    def __init__(self, ours: bool, storage: str) -> None:
        port = free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(port), storage]
                                        + (["--ours"] if ours else []), start_new_session=True)
        self.groups = ProcessGroups({"database": self.process.pid})
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
        self.journaled, self.unjournaled = MongoClient(uri, **JOURNALED), MongoClient(uri, **UNJOURNALED)
        self.journaled.admin.command("ping")  # up
        self.shapes = _shapes(self.journaled, self.unjournaled)

    def cpu_ms(self, shape: int, first: int, count: int) -> float:
        """The server's CPU per command of `shape` over commands `first` … `first + count - 1`."""
        _, command, documents = self.shapes[shape]
        before = self.groups.cpu_seconds()["database"]
        for n in range(first, first + count):
            command(n)
        return (self.groups.cpu_seconds()["database"] - before) * 1000 / (count * documents)

    def stop(self) -> None:
        self.journaled.close()
        self.unjournaled.close()
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def _shapes(journaled: MongoClient[Any], unjournaled: MongoClient[Any]) -> list[Shape]:
    """(label, one command n, documents per command) of each shape; a shape's commands numbered from 0."""
    db, fast = journaled["bench"], unjournaled["bench"]
    indexed = db["indexed"]
    for field in range(INDEXED_FIELDS):
        indexed.create_index([("tenant_id", ASCENDING), (f"f{field}", ASCENDING)])
    scanned = db["scanned"]
    scanned.insert_many([{"_id": n, "n": n, "text": "hello, I need help"} for n in range(SCANNED_DOCS)])

    def doc(n: int) -> dict[str, Any]:
        return {"_id": n, "tenant_id": "acme", "text": "hello, I need help", **{f"f{f}": n for f in range(10)}}

    return [
        ("ping", lambda n: db.command("ping"), 1),
        ("find one by _id", lambda n: scanned.find_one({"_id": n % SCANNED_DOCS}), 1),
        ("insert one, journaled", lambda n: db["plain"].insert_one(doc(n)), 1),
        ("insert one, unjournaled", lambda n: fast["plain_fast"].insert_one(doc(n)), 1),
        ("update one by _id ($set), journaled", lambda n: db["plain"].update_one(
            {"_id": n}, {"$set": {"text": "thanks"}}), 1),
        ("update one by _id ($set), unjournaled", lambda n: fast["plain_fast"].update_one(
            {"_id": n}, {"$set": {"text": "thanks"}}), 1),
        ("upsert one by _id ($set), journaled", lambda n: db["upserted"].update_one(
            {"_id": n}, {"$set": {"text": "hi"}}, upsert=True), 1),
        (f"insert one, {INDEXED_FIELDS} more indexes, journaled", lambda n: indexed.insert_one(doc(n)), 1),
        (f"update one by _id ($set), {INDEXED_FIELDS} more indexes, journaled", lambda n: indexed.update_one(
            {"_id": n}, {"$set": {"text": "thanks"}}), 1),
        (f"update one by _id ($set of one indexed field), {INDEXED_FIELDS} more indexes, journaled",
         lambda n: indexed.update_one({"_id": n}, {"$set": {"f0": -n}}), 1),
        (f"replace one by _id and version, {INDEXED_FIELDS} more indexes, journaled (the router's save)",
         lambda n: indexed.replace_one({"_id": n, "version": None}, {**doc(n), "version": 1}), 1),
        ("insert_many of 100, per document, journaled", lambda n: db["bulk"].insert_many(
            [doc(n * 100 + d) for d in range(100)]), 100),
        (f"find one by an unindexed field ({SCANNED_DOCS:,} documents)",
         lambda n: scanned.find_one({"n": SCANNED_DOCS - 1 - n % SCANNED_DOCS}), 1),
    ]


def measure(commands: int, rounds: int) -> list[tuple[str, float, float]]:
    """(shape, as shipped, as deploy/local runs it): each the median over `rounds` of the server's CPU ms per command,
    the two servers taking turns so that the machine's other load weighs on both alike."""
    with tempfile.TemporaryDirectory(prefix="bench-db-") as storage:
        shipped = Server(False, f"{storage}/shipped")
        try:
            ours = Server(True, f"{storage}/ours")
            try:
                found = []
                for shape, (label, _, documents) in enumerate(shipped.shapes):
                    count = max(1, commands // rounds // (documents if documents > 1 else 1))
                    if label.startswith("find one by an unindexed"):
                        count = max(1, count // 20)
                    turns: tuple[list[float], list[float]] = ([], [])
                    for turn in range(rounds):
                        turns[0].append(shipped.cpu_ms(shape, turn * count, count))
                        turns[1].append(ours.cpu_ms(shape, turn * count, count))
                    found.append((label, statistics.median(turns[0]), statistics.median(turns[1])))
                return found
            finally:
                ours.stop()
        finally:
            shipped.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=2000, help="commands of each shape on each server")
    parser.add_argument("--rounds", type=int, default=5, help="turns the two servers take at each shape")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STORAGE"), help=argparse.SUPPRESS)
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.ours)
        return
    found = measure(args.commands, args.rounds)
    print(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores), `.venv/bin/python bench/database_commands.py --commands {args.commands} "
          f"--rounds {args.rounds}`\n")
    print("| command (one client, one at a time) | as shipped: server CPU ms | as deploy/local runs it: ms |")
    print("|---|---|---|")
    for label, shipped, ours in found:
        print(f"| {label} | {shipped:.3f} | {ours:.3f} |")


if __name__ == "__main__":
    main()
