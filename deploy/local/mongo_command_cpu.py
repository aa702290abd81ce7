"""The local database's own CPU by command shape, for benchmarks (issue 17: where the database's CPU per message
goes). Off unless mongo_server.py is started with `--command-cpu PATH` (infra.py passes it when
PARLEY_LOCAL_MONGO_COMMAND_CPU names a file): then each command's CPU time on the thread that runs it (user and
system; waits for locks, the disk or the network are not CPU) is added up by shape, and PATH is rewritten every
second as JSON `{shape: [commands, documents, cpu_seconds]}`. A shape is the command, its collection and the fields
its filter names, values left out: `update visibility_owners {_id} $set upsert`. What is not under a command —
reading and writing the wire, WiredTiger's own threads, the TTL sweep — is the process's CPU less their sum."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import secantus.server

Totals = dict[str, list[float]]  # shape → [commands, documents, cpu seconds]
WRITE_EVERY_S = 1.0
DOCUMENT_LISTS = {"insert": "documents", "update": "updates", "delete": "deletes"}


def filter_shape(query: Any) -> str:
    """`{tenant_id,status:$in}`: the fields a filter names, with the operators applied to each."""
    if not isinstance(query, Mapping):
        return "{}"
    fields = []
    for name, value in query.items():
        if name in ("$or", "$and", "$nor") and isinstance(value, list):
            fields.append(f"{name}[{'|'.join(filter_shape(clause) for clause in value)}]")
        elif isinstance(value, Mapping) and value and all(str(key).startswith("$") for key in value):
            fields.append(f"{name}:{'/'.join(sorted(value))}")
        else:
            fields.append(name)
    return "{" + ",".join(fields) + "}"


def _update_shape(query: Any, update: Any, upsert: Any) -> str:
    if isinstance(update, list):
        change = "pipeline"
    elif isinstance(update, Mapping) and any(str(key).startswith("$") for key in update):
        change = ",".join(sorted(update))
    else:
        change = "replacement"
    return f"{filter_shape(query)} {change}{' upsert' if upsert else ''}"


def command_shape(body: Mapping[str, Any]) -> tuple[str, int]:
    """A command's shape and how many documents it writes or names (a bulk write's statements); the first
    statement of a bulk write stands for its shape."""
    name = next(iter(body), "?")
    collection = body.get("collection") if name == "getMore" else body.get(name)
    head = f"{name} {collection}" if isinstance(collection, str) else name
    statements = body.get(DOCUMENT_LISTS.get(name, ""), None)
    documents = len(statements) if isinstance(statements, list) else 1
    first = statements[0] if isinstance(statements, list) and statements else {}
    if name == "update" and isinstance(first, Mapping):
        return f"{head} {_update_shape(first.get('q'), first.get('u'), first.get('upsert'))}", documents
    if name == "delete" and isinstance(first, Mapping):
        return f"{head} {filter_shape(first.get('q'))}", documents
    if name == "findAndModify":
        return f"{head} {_update_shape(body.get('query'), body.get('update'), body.get('upsert'))}", documents
    if name == "find":
        sort = f" sort {filter_shape(body['sort'])}" if body.get("sort") else ""
        return f"{head} {filter_shape(body.get('filter'))}{sort}", documents
    if name in ("count", "distinct"):
        return f"{head} {filter_shape(body.get('query'))}", documents
    if name == "aggregate" and isinstance(body.get("pipeline"), list):
        return f"{head} {'>'.join(str(next(iter(stage), '?')) for stage in body['pipeline'])}", documents
    return head, documents


class CommandCpu:
    """Wraps SecantusDB's command dispatch (the one function every command goes through) to time each command."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.totals: Totals = {}
        self._lock = threading.Lock()

    def timed(self, dispatch: Callable[[dict[str, Any], Any], dict[str, Any]]
              ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        def timed_dispatch(body: dict[str, Any], context: Any) -> dict[str, Any]:
            started = time.thread_time()
            try:
                return dispatch(body, context)
            finally:
                self.add(body, time.thread_time() - started)

        return timed_dispatch

    def add(self, body: Mapping[str, Any], cpu_seconds: float) -> None:
        shape, documents = command_shape(body)
        with self._lock:
            totals = self.totals.setdefault(shape, [0, 0, 0.0])
            totals[0] += 1
            totals[1] += documents
            totals[2] += cpu_seconds

    def write(self) -> None:
        with self._lock:
            snapshot = {shape: list(totals) for shape, totals in self.totals.items()}
        written = self.path.with_suffix(".tmp")
        written.write_text(json.dumps(snapshot))
        os.replace(written, self.path)  # a reader never sees half a file

    def write_every(self, seconds: float) -> None:
        while True:
            time.sleep(seconds)
            self.write()


def install(path: Path) -> CommandCpu:
    """Time every command from now on (before the server starts) and write the totals to `path` every second."""
    recorder = CommandCpu(path)
    secantus.server.dispatch = recorder.timed(secantus.server.dispatch)
    threading.Thread(target=recorder.write_every, args=(WRITE_EVERY_S,), name="command-cpu", daemon=True).start()
    return recorder


def read(path: Path) -> Totals:
    """The totals written so far ({} before the first write)."""
    try:
        return {shape: list(totals) for shape, totals in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}


def between(before: Totals, after: Totals) -> Totals:
    """What was spent between two readings."""
    return {shape: [now - was for now, was in zip(totals, before.get(shape, [0, 0, 0.0]), strict=True)]
            for shape, totals in after.items() if totals[0] > before.get(shape, [0, 0, 0.0])[0]}
