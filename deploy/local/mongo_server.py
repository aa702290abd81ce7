"""Runs the local MongoDB-wire-protocol server (SecantusDB, a one-member replica set) in the foreground
until SIGTERM/SIGINT. In-process so the TTL sweep interval is honoured (the CLI ignores it), every commit is
written through to the operating system (`commits_written_through`), no oplog is kept (`without_oplog`), a
write reads its collection's index catalog once, not at every step (`index_catalog_read_once_per_transaction`), a
findAndModify finds the document it matched by `_id` instead of scanning (`writes_find_their_document_by_id`), an
update rewrites only the index entries whose fields it changed (`updates_rewrite_only_changed_index_entries`), and
all its threads run on one core (`on_one_core`)."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import inspect
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import secantus.storage
from secantus import SecantusDBServer
from secantus.storage import Storage

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


# The SecantusDB whose storage.py the patches below were proven safe against (index_catalog_read_once_per_transaction:
# every path that writes the catalog, and how its transactions take their snapshots; writes_find_their_document_by_id:
# every caller of its planner; updates_rewrite_only_changed_index_entries: every caller of the index entries' writers;
# ttl_sweeps_release_their_pages: the TTL sweep's reads and locks).
# Another version needs that reading again.
SECANTUS_REVIEWED = "0.7.0b3"
INDEX_CATALOG = "table:secantus_indexes"  # SecantusDB's _IDX_TABLE: a row (db, coll, name) -> BSON {key, options}
CatalogRows = list[tuple[str, bytes]]  # one collection's catalog: (index name, the row's stored BSON)


class _CatalogMemo:
    """The catalog rows one WiredTiger transaction has read, per collection; valid only on `session`."""

    __slots__ = ("rows", "session")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.rows: dict[tuple[str, str], CatalogRows] = {}


def _forget_catalog(tls: Any) -> None:
    memo: _CatalogMemo | None = getattr(tls, "catalog_memo", None)
    if memo is not None:
        memo.rows.clear()


class _CatalogCursor:
    """A cursor on the index catalog that forgets its thread's memo before anything is written through it."""

    __slots__ = ("_cursor", "_tls")

    def __init__(self, cursor: Any, tls: Any) -> None:
        self._cursor, self._tls = cursor, tls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __getitem__(self, key: Any) -> Any:
        return self._cursor[key]

    def __iter__(self) -> Any:
        return iter(self._cursor)

    def __setitem__(self, key: Any, value: Any) -> None:
        _forget_catalog(self._tls)
        self._cursor[key] = value

    def __delitem__(self, key: Any) -> None:
        _forget_catalog(self._tls)
        del self._cursor[key]

    def insert(self) -> Any:
        _forget_catalog(self._tls)
        return self._cursor.insert()

    def update(self) -> Any:
        _forget_catalog(self._tls)
        return self._cursor.update()

    def remove(self) -> Any:
        _forget_catalog(self._tls)
        return self._cursor.remove()

    def modify(self, *entries: Any) -> Any:
        _forget_catalog(self._tls)
        return self._cursor.modify(*entries)

    def reserve(self) -> Any:
        _forget_catalog(self._tls)
        return self._cursor.reserve()


def index_catalog_read_once_per_transaction() -> None:
    """Within one write transaction, SecantusDB reads a collection's index catalog from WiredTiger once and reuses
    the rows, instead of at every step of every document (the indexes, the partial filters, the multikey names, the
    options for each unique check and each index entry, the planner of an update's filter). Each read walks every
    index's row: most of the cost of a write into a collection with many indexes (docs/benchmarks.md, "The index
    catalog read once per write").

    Why it is safe: every insert, update and delete runs in one WiredTiger transaction of its thread's session
    (`_batch_transaction`), with snapshot isolation, so every read of the catalog inside it returns the same rows
    — what another session commits later (an index created, dropped or changed through another connection) is
    invisible to it until it ends — except for what the transaction writes itself or a reset of its snapshot. The
    memo lives exactly that long: it starts once the transaction has begun, ends before it commits or rolls back,
    serves only reads on that same session, is emptied when the session's snapshot is reset (`reset_snapshot`, in
    `_refresh_read_snapshot`), and is emptied before any write through a cursor on the catalog (SecantusDB writes
    it only through cursors from `_cursor`: index builds and drops, collMod, multikey marking, dropping or renaming
    collections and databases, all of them; only its start-up check of the entry format opens one otherwise, to
    read). So a read served from the memo returns the very bytes WiredTiger would return,
    decoded afresh for every read as before (no caller shares a decoded row with another). Statements of a
    multi-document transaction, reads outside a write (find, aggregate) and DDL read the catalog as before: they
    keep SecantusDB's own behaviour, a global cache would not (a reader whose snapshot predates an index build
    could plan with the new index and miss its entries). A SecantusDB other than the version reviewed, or whose
    internals no longer read as expected, refuses to start."""
    if getattr(Storage, "_catalog_memo_installed", False):
        return
    version = importlib.metadata.version("secantusdb")
    expected = {"_cursor": ["self", "table", "overwrite"], "_batch_transaction": ["self", "sync"],
                "_iter_indexes": ["self", "db", "coll"], "_refresh_read_snapshot": ["self"]}
    found = {name: list(inspect.signature(getattr(Storage, name, lambda: None)).parameters) for name in expected}
    if (version != SECANTUS_REVIEWED or found != expected or secantus.storage._IDX_TABLE != INDEX_CATALOG
            or not hasattr(Storage._batch_transaction, "__wrapped__")):
        raise RuntimeError(f"SecantusDB {version} is not the one reviewed ({SECANTUS_REVIEWED}) or its storage "
                           f"changed, review index_catalog_read_once_per_transaction: {found}")
    open_cursor, begin_batch = Storage._cursor, Storage._batch_transaction
    read_catalog, refresh_snapshot = Storage._iter_indexes, Storage._refresh_read_snapshot

    def cursor(self: Storage, table: str, *, overwrite: bool = True) -> Any:
        found = open_cursor(self, table, overwrite=overwrite)
        return _CatalogCursor(found, self._tls) if table == INDEX_CATALOG else found

    @contextlib.contextmanager
    def batch_transaction(self: Storage, *, sync: bool = False) -> Iterator[Any]:
        with begin_batch(self, sync=sync) as session:
            if getattr(self._tls, "user_txn", None) is not None:  # a statement of a multi-document transaction
                yield session
                return
            outer = getattr(self._tls, "catalog_memo", None)
            self._tls.catalog_memo = _CatalogMemo(session)
            try:
                yield session
            finally:
                self._tls.catalog_memo = outer

    def iter_indexes(self: Storage, db: str, coll: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        memo: _CatalogMemo | None = getattr(self._tls, "catalog_memo", None)
        if memo is None or memo.session is not getattr(self._tls, "session", None):
            yield from read_catalog(self, db, coll)
            return
        rows = memo.rows.get((db, coll))
        if rows is None:
            rows = memo.rows[(db, coll)] = _catalog_rows(open_cursor(self, INDEX_CATALOG), db, coll)
        for name, stored in rows:
            payload = bson.decode(stored)
            yield name, payload.get("key", {}), payload.get("options", {})

    def refresh_read_snapshot(self: Storage) -> None:
        _forget_catalog(self._tls)
        refresh_snapshot(self)

    Storage._cursor = cursor
    Storage._batch_transaction = batch_transaction
    Storage._iter_indexes = iter_indexes
    Storage._refresh_read_snapshot = refresh_read_snapshot
    Storage._catalog_memo_installed = True


def writes_find_their_document_by_id() -> None:
    """A filter naming `_id` next to a top-level operator (`{_id: X, $and: [...]}`) looks its document up by `_id`
    instead of scanning the collection. SecantusDB writes every findAndModify that matched a document with exactly
    that filter (the matched `_id` plus the query re-asserted in `$and`), and its planner gives up on any filter with
    a top-level operator: each such write walked the whole collection holding the collection's lock — the router's
    timeline statuses and contact cards, growing with the data, and every other write of the collection queued
    behind it (a router waited on them past its stop; docs/benchmarks.md, "findAndModify by `_id`").

    Why it is safe: top-level clauses are a conjunction, so every document the filter matches has that `_id`; the
    lookup returns a superset of the matches (one document at most) and every caller applies the whole filter to
    each candidate, as it does for any index lookup. Only without a collation (the `_id` lookup compares binary)
    and only for an `_id` SecantusDB can look up directly (an exact value or `$in`; anything else plans as before).
    A SecantusDB other than the version reviewed refuses to start."""
    if getattr(Storage, "_id_lookup_installed", False):
        return
    version = importlib.metadata.version("secantusdb")
    found = list(inspect.signature(Storage._try_index_id_keys).parameters)
    if version != SECANTUS_REVIEWED or found != ["self", "db", "coll", "filter", "collation"]:
        raise RuntimeError(f"SecantusDB {version} is not the one reviewed ({SECANTUS_REVIEWED}) or its planner "
                           f"changed, review writes_find_their_document_by_id: {found}")
    plan = Storage._try_index_id_keys

    def try_index_id_keys(self: Storage, db: str, coll: str, filter: dict[str, Any], *,
                          collation: Any = None) -> list[bytes] | None:
        if collation is None and "_id" in filter and len(filter) > 1:
            by_id = plan(self, db, coll, {"_id": filter["_id"]})
            if by_id is not None:
                return by_id
        return plan(self, db, coll, filter, collation=collation)

    Storage._try_index_id_keys = try_index_id_keys
    Storage._id_lookup_installed = True


IndexSpec = tuple[str, dict[str, Any], bool, bool]  # SecantusDB's (name, key, sparse, unique) of one index
_ABSENT = object()
_ORDERED_KEY_VALUES = (1, -1)  # an ascending or descending field; text, hashed, geo and wildcard keys differ


def updates_rewrite_only_changed_index_entries() -> None:
    """An updated document's entries are deleted and written again only in the indexes whose fields (and partial
    filter's fields) the update changed, as mongod does; SecantusDB deleted and re-wrote every entry of every index
    of the document on every update. A conversation (15 indexes) saved with a new contact name or version paid for
    all of them: 1.2 ms of the database's CPU per save (docs/benchmarks.md, "Index entries rewritten only where an
    update changes them").

    Why it is safe: an index entry is computed from the document's values of the index's fields alone (with the
    index's options, which one write does not change), and whether the document is in a partial index from the
    values of its filter's fields alone; so where every top-level field that either names holds the same value
    before and after — the same BSON types, the same order of a sub-document's fields — the entries the update
    would delete are exactly those it would write back (the same keys, the same RecordId: an update keeps its row),
    and a unique key released and claimed again stays the row's. Anything else is rewritten as before: any index
    whose key is not made of ascending or descending fields (text, hashed, geo, wildcard) and any index with a field
    that changed. SecantusDB's two update paths (`_update_chunk`, `_update_matching_single_txn`) delete a
    document's entries and, after writing the row, write the new ones: inside them the deletion waits for the
    write that follows and both happen for the indexes that changed; every other caller (inserts, deletes, the
    TTL sweep, an upsert's insert) is untouched. A SecantusDB other than the version reviewed refuses to start."""
    if getattr(Storage, "_index_diff_installed", False):
        return
    version = importlib.metadata.version("secantusdb")
    expected = ["self", "db", "coll", "doc", "indexes", "partials", "recordid"]
    found = {name: list(inspect.signature(getattr(Storage, name)).parameters)
             for name in ("_delete_index_entries", "_write_index_entries")}
    if version != SECANTUS_REVIEWED or any(parameters != expected for parameters in found.values()):
        raise RuntimeError(f"SecantusDB {version} is not the one reviewed ({SECANTUS_REVIEWED}) or its index "
                           f"entries changed, review updates_rewrite_only_changed_index_entries: {found}")
    delete_entries, write_entries = Storage._delete_index_entries, Storage._write_index_entries

    def updating(update_path: Any) -> Any:
        @functools.wraps(update_path)
        def update(self: Storage, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(self._tls, "replaced_entries", _ABSENT)
            self._tls.replaced_entries = None  # inside an update path: its deletions wait for their write
            try:
                return update_path(self, *args, **kwargs)
            finally:
                self._tls.replaced_entries = outer

        return update

    def delete_index_entries(self: Storage, db: str, coll: str, doc: dict[str, Any], indexes: list[IndexSpec],
                             partials: dict[str, dict[str, Any]] | None = None, *, recordid: int) -> None:
        if getattr(self._tls, "replaced_entries", _ABSENT) is None:
            self._tls.replaced_entries = (db, coll, recordid, doc, indexes, partials)
            return
        delete_entries(self, db, coll, doc, indexes, partials, recordid=recordid)

    def write_index_entries(self: Storage, db: str, coll: str, doc: dict[str, Any], indexes: list[IndexSpec],
                            partials: dict[str, dict[str, Any]] | None = None, *, recordid: int) -> None:
        replaced = getattr(self._tls, "replaced_entries", None)
        if replaced is None or replaced is _ABSENT:
            write_entries(self, db, coll, doc, indexes, partials, recordid=recordid)
            return
        self._tls.replaced_entries = None
        if replaced[:3] != (db, coll, recordid):  # not the write its deletion waited for: both as SecantusDB does
            delete_entries(self, *replaced[:2], *replaced[3:], recordid=replaced[2])
            write_entries(self, db, coll, doc, indexes, partials, recordid=recordid)
            return
        if partials is None:
            partials = self._partial_filters(db, coll)
        before = replaced[3]
        changed = [index for index in indexes
                   if not _entries_unchanged(before, doc, index[1], partials.get(index[0]))]
        delete_entries(self, db, coll, before, changed, partials, recordid=recordid)
        write_entries(self, db, coll, doc, changed, partials, recordid=recordid)

    Storage._update_chunk = updating(Storage._update_chunk)
    Storage._update_matching_single_txn = updating(Storage._update_matching_single_txn)
    Storage._delete_index_entries = delete_index_entries
    Storage._write_index_entries = write_index_entries
    Storage._index_diff_installed = True


def _entries_unchanged(before: dict[str, Any], after: dict[str, Any], key: dict[str, Any],
                       partial: dict[str, Any] | None) -> bool:
    """Whether an index with this key and partial filter holds the same entries for both versions of a document."""
    if any(value not in _ORDERED_KEY_VALUES or "$" in field for field, value in key.items()):
        return False
    fields = {field.split(".", 1)[0] for field in key}
    if partial is not None:
        partial_fields = _filter_fields(partial)
        if partial_fields is None:
            return False
        fields |= partial_fields
    return all(_same_bson(before.get(field, _ABSENT), after.get(field, _ABSENT)) for field in fields)


def _filter_fields(expression: dict[str, Any]) -> set[str] | None:
    """The top-level fields a partial filter reads (through `$and`); None for a shape not read here."""
    fields: set[str] = set()
    for name, value in expression.items():
        if name == "$and" and isinstance(value, list):
            for clause in value:
                inner = _filter_fields(clause) if isinstance(clause, dict) else None
                if inner is None:
                    return None
                fields |= inner
        elif name.startswith("$"):
            return None
        else:
            fields.add(name.split(".", 1)[0])
    return fields


def _same_bson(before: Any, after: Any) -> bool:
    """The same value as BSON stores it: the same types throughout (1, 1.0 and True are equal in Python, not as
    index keys) and a sub-document's fields in the same order."""
    if type(before) is not type(after):
        return False
    if isinstance(before, dict):
        return list(before) == list(after) and all(_same_bson(before[name], after[name]) for name in before)
    if isinstance(before, list):
        return len(before) == len(after) and all(map(_same_bson, before, after))
    return bool(before == after)


def ttl_sweeps_release_their_pages() -> None:
    """The TTL sweeper lets go of the pages its cursors rest on before it lets go of the storage lock. SecantusDB
    resets a cursor only when its thread next uses it, so between sweeps (every `--ttl-sweep-seconds`) the sweeper's
    cursors kept a hazard pointer on the last page each read, in tables that every collection shares. A page grown
    past WiredTiger's limit must be evicted before it is read again; a read that finds it pinned sleeps ~0.5 ms and
    tries again, up to ten times for every document it reads there, and the sweeper, to let go, waits for the lock
    that read holds. So a read of a few thousand documents under load — the router's capacity round reading the
    held conversations — held every command of the database for 14 to 17 s, WiredTiger counting ~1,600 evictions a
    second refused for a hazard pointer (docs/benchmarks.md, "The stalls at 100 msg/s").

    Why it is safe: `prune_ttl` runs whole under the lock (re-entrant) and reads no cursor after it returns; a reset
    cursor is positioned again by its next search, as SecantusDB's own `_cursor` does before every use. A SecantusDB
    other than the version reviewed refuses to start."""
    if getattr(Storage, "_ttl_release_installed", False):
        return
    version = importlib.metadata.version("secantusdb")
    found = list(inspect.signature(Storage.prune_ttl).parameters)
    if version != SECANTUS_REVIEWED or found != ["self", "db", "coll", "now"]:
        raise RuntimeError(f"SecantusDB {version} is not the one reviewed ({SECANTUS_REVIEWED}) or its TTL sweep "
                           f"changed, review ttl_sweeps_release_their_pages: {found}")
    prune = Storage.prune_ttl

    @functools.wraps(prune)
    def prune_then_release(self: Storage, db: str, coll: str, *, now: Any = None) -> int:
        with self._lock:
            try:
                return prune(self, db, coll, now=now)
            finally:
                for cursor in getattr(self._tls, "cursors", {}).values():
                    cursor.reset()

    Storage.prune_ttl = prune_then_release
    Storage._ttl_release_installed = True


def on_one_core() -> None:
    """Every thread of this process, and every thread started from now on, runs on one core (the last this process
    may use). SecantusDB runs each connection's commands on a thread of its own, in Python under one GIL, and its
    WiredTiger binding lets go of the GIL around every call into the storage engine: with several connections busy,
    the GIL changes hands many times per command, and each hand-over to a thread waiting on another core wakes that
    core. The threads cannot run Python side by side anyway; on one core a hand-over is a switch on the core already
    running (docs/benchmarks.md, "The local database on one core"). A thread takes the cores of the thread that
    starts it, so those running now (one is started on import) are moved, and the rest follow."""
    core = {max(os.sched_getaffinity(0))}
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), core)


def storage_as_parley_runs_it() -> None:
    """Every change of SecantusDB's storage above (each also installable alone)."""
    index_catalog_read_once_per_transaction()
    writes_find_their_document_by_id()
    updates_rewrite_only_changed_index_entries()
    ttl_sweeps_release_their_pages()


def _catalog_rows(cursor: Any, db: str, coll: str) -> CatalogRows:
    """One collection's rows of the catalog, walked as SecantusDB's `_iter_indexes` walks them."""
    cursor.set_key(db, coll, "")
    found = cursor.search_near()
    if found == secantus.storage.wt.WT_NOTFOUND or (found < 0 and cursor.next() != 0):
        return []
    rows: CatalogRows = []
    while True:
        row_db, row_coll, name = cursor.get_key()
        if row_db != db or row_coll != coll:
            return rows
        rows.append((name, bytes(cursor.get_value())))
        if cursor.next() != 0:
            return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--storage-path", required=True)
    parser.add_argument("--ttl-sweep-seconds", type=float, default=5.0)
    parser.add_argument("--command-cpu", type=Path, help="write the CPU of each command shape there (benchmarks)")
    args = parser.parse_args()
    on_one_core()
    if args.command_cpu:
        import mongo_command_cpu  # beside this script

        mongo_command_cpu.install(args.command_cpu)
    with commits_written_through():
        server = SecantusDBServer(
            host="127.0.0.1", port=args.port, storage_path=args.storage_path, ttl_sweep_seconds=args.ttl_sweep_seconds
        )
    without_oplog(server)
    storage_as_parley_runs_it()
    server.start()
    print(f"mongodb wire protocol ready on 127.0.0.1:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
