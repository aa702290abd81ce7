"""The local database as deploy/local runs it: without an oplog, which only change streams read and Parley opens
none, transactions working all the same; a write reading its collection's index catalog once, every change of the
catalog seen by the next write (`index_catalog_read_once_per_transaction`); a findAndModify's write finding its
document by `_id` (`writes_find_their_document_by_id`); timing its commands for benchmarks
(`--command-cpu`, deploy/local/mongo_command_cpu.py): each command shape's count, documents and CPU, the filter's
fields named and its values left out. (That it loses nothing acknowledged to a kill -9:
tests/faults/test_server_kills.py.)"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import pytest
import secantus.storage
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError
from secantus.storage import Storage

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "local"))

import mongo_command_cpu  # noqa: E402
import mongo_server  # noqa: E402


def test_a_shape_names_the_command_its_collection_and_the_fields_not_the_values() -> None:
    shape = mongo_command_cpu.command_shape
    assert shape({"find": "conversations", "filter": {"tenant_id": "acme", "status": {"$in": ["open"]}},
                  "sort": {"opened_at": -1}}) == ("find conversations {tenant_id,status:$in} sort {opened_at}", 1)
    assert shape({"update": "owners", "updates": [{"q": {"_id": "k1"}, "u": {"$set": {"a": 1}}, "upsert": True},
                                                  {"q": {"_id": "k2"}, "u": {"$set": {"a": 2}}, "upsert": True}]}
                 ) == ("update owners {_id} $set upsert", 2)
    assert shape({"update": "conversations", "updates": [{"q": {"_id": "c", "version": 3}, "u": {"status": "open"}}]}
                 ) == ("update conversations {_id,version} replacement", 1)
    assert shape({"insert": "timeline", "documents": [{"_id": 1}, {"_id": 2}, {"_id": 3}]}) == ("insert timeline", 3)
    assert shape({"aggregate": "open", "pipeline": [{"$match": {}}, {"$lookup": {}}]}) == (
        "aggregate open $match>$lookup", 1)
    assert shape({"getMore": 42, "collection": "timeline"}) == ("getMore timeline", 1)
    assert shape({"ping": 1}) == ("ping", 1)


def test_what_is_spent_between_two_readings() -> None:
    before = {"insert a": [2, 5, 0.5]}
    after = {"insert a": [3, 6, 0.75], "find a {_id}": [1, 1, 0.125], "ping": [4, 4, 0.0]}
    assert mongo_command_cpu.between(before, after) == {"insert a": [1, 1, 0.25], "find a {_id}": [1, 1, 0.125],
                                                        "ping": [4, 4, 0.0]}
    assert mongo_command_cpu.between(after, after) == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _local_database(tmp_path: Path, *options: str) -> Iterator[tuple[str, int]]:
    """A throwaway local database on a free port, as deploy/local/infra.py starts it; its URI and process id."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "deploy/local/mongo_server.py"), "--port", str(port),
                               "--storage-path", str(tmp_path / "data"), *options],
                              start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false", server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def timed_database(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The local database timing its commands."""
    totals = tmp_path / "command-cpu.json"
    with _local_database(tmp_path, "--command-cpu", str(totals)) as (uri, _):
        yield uri, totals


def test_the_local_database_times_each_command_shape(timed_database: tuple[str, Path]) -> None:
    uri, totals = timed_database
    client: MongoClient[dict[str, object]]
    with MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
        collection: Collection[dict[str, object]] = client["timed"]["owners"]
        collection.insert_many([{"_id": f"k{n}", "team": "sales"} for n in range(3)])
        for n in range(2):
            collection.update_one({"_id": f"k{n}"}, {"$set": {"team": "support"}})
        assert collection.find_one({"team": "support"}) is not None
    deadline = time.monotonic() + 30
    while (found := mongo_command_cpu.read(totals)).get("find owners {team}") is None:
        assert time.monotonic() < deadline, f"no find in {found}"
        time.sleep(0.2)
    assert found["insert owners"][:2] == [1, 3]
    assert found["update owners {_id} $set"][:2] == [2, 2]
    assert found["find owners {team}"][:2] == [1, 1]
    assert all(cpu > 0 for *_, cpu in found.values())


def test_parley_opens_no_change_stream_so_the_local_database_keeps_no_oplog() -> None:
    """deploy/local/mongo_server.py's without_oplog: a change stream on the local database would see nothing."""
    sources = [path for root in ("services", "libs") for path in (REPO / root).rglob("*.py")]
    mentions = [str(path) for path in sources if "changeStream" in (text := path.read_text())
                or "change_stream" in text or "ChangeStream" in text]
    watch_calls = {str(path.relative_to(REPO)) for path in sources for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "watch"}
    assert mentions == []
    # the router's live hub (its own watchers of conversations' changes), not a collection's change stream
    assert watch_calls <= {"services/router/parley_router/handlers/live.py"}


def test_the_local_database_writes_no_oplog_and_commits_transactions(timed_database: tuple[str, Path]) -> None:
    uri, _ = timed_database
    client: MongoClient[dict[str, object]]
    with MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
        oplog: Collection[dict[str, object]] = client["local"]["oplog.rs"]
        entries = oplog.count_documents({})
        merged: Collection[dict[str, object]] = client["timed"]["merged"]
        merged.insert_one({"_id": "kept"})
        with client.start_session() as session, session.start_transaction():
            merged.insert_one({"_id": "folded"}, session=session)
            merged.update_one({"_id": "kept"}, {"$set": {"absorbed": "folded"}}, session=session)
        assert merged.find_one({"_id": "kept"}) == {"_id": "kept", "absorbed": "folded"}
        assert merged.count_documents({}) == 2
        assert oplog.count_documents({}) == entries


# SecantusDB serves each connection on a thread of its own, and a write's memo of the index catalog belongs to
# that thread's transaction: the catalog is changed through one connection (`ddl`) and written through others, so
# a memo that outlived its transaction would show in what they write.
Connections = tuple[Database[dict[str, Any]], Database[dict[str, Any]]]


@pytest.fixture
def local_database(tmp_path: Path) -> Iterator[str]:
    with _local_database(tmp_path) as (uri, _):
        yield uri


def _cores_of_threads(pid: int) -> dict[str, set[int]]:
    return {thread: os.sched_getaffinity(int(thread)) for thread in os.listdir(f"/proc/{pid}/task")}


def test_the_local_database_runs_every_thread_on_one_core(tmp_path: Path) -> None:
    """mongo_server.on_one_core: WiredTiger's threads, the accepting one and each connection's, on the same core."""
    client: MongoClient[dict[str, object]]
    with _local_database(tmp_path) as (uri, pid), MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
        client["cores"]["docs"].insert_one({"n": 1})  # a connection served: its thread started
        cores = _cores_of_threads(pid)
        assert len(cores) > 3  # the main thread, the storage engine's and the server's own
        assert set(map(frozenset, cores.values())) == {frozenset({max(os.sched_getaffinity(0))})}


@pytest.fixture
def connections(local_database: str) -> Iterator[Connections]:
    """(ddl, writer): the same database through two clients of one connection each."""
    ddl: MongoClient[dict[str, Any]]
    writer: MongoClient[dict[str, Any]]
    with MongoClient(local_database, maxPoolSize=1) as ddl, MongoClient(local_database, maxPoolSize=1) as writer:
        yield ddl["catalog"], writer["catalog"]


def _writes(people: Collection[dict[str, Any]], emails: list[str]) -> None:
    """Inserts and updates, each its own write transaction on the writer's thread."""
    for email in emails:
        inserted = people.insert_one({"email": email, "verified": False}).inserted_id
        people.update_one({"_id": inserted}, {"$set": {"seen": True}})


def _duplicate_refused(people: Collection[dict[str, Any]], document: dict[str, Any]) -> bool:
    try:
        people.insert_one(dict(document))
    except DuplicateKeyError:
        return True
    return False


def test_an_index_created_through_another_connection_is_kept_up_and_enforced_by_the_next_write(
        connections: Connections) -> None:
    ddl, writer = connections
    _writes(writer["people"], ["ann@x", "bob@x"])
    ddl["people"].create_index("email", unique=True)
    assert _duplicate_refused(writer["people"], {"email": "ann@x"})
    cid = writer["people"].insert_one({"email": "cid@x"}).inserted_id
    with pytest.raises(DuplicateKeyError):
        writer["people"].update_one({"_id": cid}, {"$set": {"email": "bob@x"}})
    assert [doc["_id"] for doc in writer["people"].find({"email": "cid@x"}).hint("email_1")] == [cid]


def test_a_dropped_unique_index_is_no_longer_enforced(connections: Connections) -> None:
    ddl, writer = connections
    ddl["people"].create_index("email", unique=True)
    _writes(writer["people"], ["ann@x"])
    ddl["people"].drop_index("email_1")
    _writes(writer["people"], ["ann@x", "ann@x"])
    assert writer["people"].count_documents({"email": "ann@x"}) == 3


def test_collmod_prepare_unique_holds_the_next_write(connections: Connections) -> None:
    ddl, writer = connections
    ddl["people"].create_index("email")
    _writes(writer["people"], ["ann@x", "ann@x"])
    ddl.command("collMod", "people", index={"keyPattern": {"email": 1}, "prepareUnique": True})
    assert _duplicate_refused(writer["people"], {"email": "ann@x"})
    assert not _duplicate_refused(writer["people"], {"email": "bob@x"})


def test_a_partial_unique_index_holds_only_what_its_filter_selects(connections: Connections) -> None:
    ddl, writer = connections
    _writes(writer["people"], ["ann@x"])
    ddl["people"].create_index("email", unique=True, partialFilterExpression={"verified": True})
    _writes(writer["people"], ["ann@x"])  # unverified: outside the index
    writer["people"].insert_one({"email": "ann@x", "verified": True})
    assert _duplicate_refused(writer["people"], {"email": "ann@x", "verified": True})
    assert writer["people"].count_documents({"email": "ann@x", "verified": True}) == 1
    assert writer["people"].count_documents({"email": "ann@x"}) == 3


@pytest.mark.parametrize("change", ["drop the collection", "drop the database", "rename it"])
def test_a_collection_dropped_or_renamed_away_starts_again_without_indexes(connections: Connections,
                                                                           change: str) -> None:
    ddl, writer = connections
    ddl["people"].create_index("email", unique=True)
    _writes(writer["people"], ["ann@x"])
    _writes(writer["archive"], ["ann@x", "ann@x"])  # the rename's target: no unique index there yet
    if change == "drop the collection":
        ddl["people"].drop()
    elif change == "drop the database":
        ddl.client.drop_database(ddl.name)
    else:
        ddl["people"].rename("archive", dropTarget=True)
        assert _duplicate_refused(writer["archive"], {"email": "ann@x"})  # the index moved with its collection
    _writes(writer["people"], ["ann@x", "ann@x"])
    assert writer["people"].count_documents({"email": "ann@x"}) == 2


def test_an_index_created_in_an_aborted_transaction_is_not_there(connections: Connections) -> None:
    ddl, writer = connections
    with ddl.client.start_session() as session:
        session.start_transaction()
        ddl["people"].create_index("email", unique=True, session=session)
        ddl["people"].insert_one({"email": "ann@x"}, session=session)
        with pytest.raises(DuplicateKeyError):  # the transaction's own index holds inside it
            ddl["people"].insert_one({"email": "ann@x"}, session=session)
        session.abort_transaction()
    _writes(writer["people"], ["ann@x", "ann@x"])
    assert list(writer["people"].index_information()) == ["_id_"]
    assert writer["people"].count_documents({"email": "ann@x"}) == 2


def _ticket(tickets: Collection[dict[str, Any]], number: int) -> None:
    tickets.insert_one({"_id": f"t{number}", "number": number})
    tickets.update_one({"_id": f"t{number}"}, {"$set": {"open": True}})


def test_writers_on_two_connections_while_an_index_is_built(connections: Connections, local_database: str) -> None:
    """Every document written before, during or after the build is in the index, and its uniqueness holds on
    both writers' connections."""
    ddl, _ = connections
    built, written = threading.Event(), []

    def write(writer: int) -> None:
        client: MongoClient[dict[str, Any]]
        with MongoClient(local_database, maxPoolSize=1) as client:
            tickets: Collection[dict[str, Any]] = client[ddl.name]["tickets"]
            first, count = writer * 1_000_000, 0
            while not built.is_set() or count < 40:
                _ticket(tickets, first + count)
                count += 1
            for _ in range(20):  # after the build
                _ticket(tickets, first + count)
                count += 1
            written.append((count, _duplicate_refused(tickets, {"number": first + count - 1})))

    writers = [threading.Thread(target=write, args=(writer,)) for writer in (1, 2)]
    for thread in writers:
        thread.start()
    while ddl["tickets"].estimated_document_count() < 20:
        time.sleep(0.01)
    ddl["tickets"].create_index("number", unique=True)
    built.set()
    for thread in writers:
        thread.join(timeout=120)
    assert [refused for _, refused in written] == [True, True]
    total = sum(n for n, _ in written)
    assert ddl["tickets"].count_documents({}) == total
    assert len(list(ddl["tickets"].find({"number": {"$gte": 0}}, {"_id": 1}).hint("number_1"))) == total


def _as_wiredtiger_holds_it(storage: Storage, db: str, coll: str) -> list[tuple[str, dict[str, Any]]]:
    """The collection's catalog read now through the thread's own session (and so its transaction), no memo."""
    cursor = storage._tls.session.open_cursor(mongo_server.INDEX_CATALOG, None)
    try:
        return [(name, bson.decode(stored)) for name, stored in mongo_server._catalog_rows(cursor, db, coll)]
    finally:
        cursor.close()


def _as_a_write_reads_it(storage: Storage, db: str, coll: str) -> list[tuple[str, dict[str, Any]]]:
    return [(name, {"key": key, "options": options}) for name, key, options in storage._iter_indexes(db, coll)]


@pytest.fixture
def catalog_memo_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo installed in this test's process and taken out after it: other tests that run SecantusDB's storage
    in-process run it as shipped."""
    for patched in ("_cursor", "_batch_transaction", "_iter_indexes", "_refresh_read_snapshot",
                    "_catalog_memo_installed"):
        monkeypatch.setattr(Storage, patched, getattr(Storage, patched, False), raising=False)
    mongo_server.index_catalog_read_once_per_transaction()


@pytest.mark.usefixtures("catalog_memo_in_this_process")
def test_a_write_transaction_reads_the_catalog_as_wiredtiger_holds_it_for_that_transaction(tmp_path: Path) -> None:
    """The memo's whole contract, in SecantusDB's storage itself: inside one write transaction a read of the catalog
    returns what WiredTiger returns to that transaction — another session's index build unseen until the snapshot
    is reset, the transaction's own catalog write (a multikey marking) seen at once — and the next transaction
    reads it afresh."""
    storage = Storage(str(tmp_path / "data"), enable_oplog=False)

    def build_elsewhere(name: str) -> None:
        builder = threading.Thread(target=storage.create_index, args=("db", "people", name, {name: 1}))
        builder.start()
        builder.join()

    try:
        storage.create_index("db", "people", "tags", {"tags": 1})
        with storage._batch_transaction():
            first = _as_a_write_reads_it(storage, "db", "people")
            build_elsewhere("email")
            assert _as_a_write_reads_it(storage, "db", "people") == first  # snapshot isolation
            storage._refresh_read_snapshot()
            assert _as_a_write_reads_it(storage, "db", "people") == _as_wiredtiger_holds_it(storage, "db", "people")
            assert [name for name, _ in _as_a_write_reads_it(storage, "db", "people")] == ["email", "tags"]
            indexes = storage._all_indexes("db", "people")
            storage._maybe_mark_multikey("db", "people", {"tags": ["a", "b"]}, indexes, set())
            assert storage._multikey_index_names("db", "people") == {"tags"}
        build_elsewhere("phone")
        with storage._batch_transaction():
            assert [name for name, _ in _as_a_write_reads_it(storage, "db", "people")] == ["email", "phone", "tags"]
            assert _as_a_write_reads_it(storage, "db", "people") == _as_wiredtiger_holds_it(storage, "db", "people")
    finally:
        storage.close()


@pytest.fixture
def id_lookup_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`writes_find_their_document_by_id` installed in this test's process and taken out after it."""
    for patched in ("_try_index_id_keys", "_id_lookup_installed"):
        monkeypatch.setattr(Storage, patched, getattr(Storage, patched, False), raising=False)
    mongo_server.writes_find_their_document_by_id()


@pytest.mark.usefixtures("id_lookup_in_this_process")
def test_a_write_filtered_by_id_and_a_top_level_operator_looks_its_document_up_instead_of_scanning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter SecantusDB writes every matched findAndModify with, `{_id, $and: [query]}`: no collection scan
    (it walked every document under the collection's lock), and the query still decides what is written."""
    storage = Storage(str(tmp_path / "data"), enable_oplog=False)
    scans: list[str] = []
    scan = Storage._scan_docs

    def counted(self: Storage, db: str, coll: str, *args: Any, **kwargs: Any) -> Any:
        scans.append(coll)
        return scan(self, db, coll, *args, **kwargs)

    monkeypatch.setattr(Storage, "_scan_docs", counted)
    try:
        storage.insert("db", "entries", [{"_id": f"e{n}", "rank": n} for n in range(200)])
        scans.clear()
        changed = storage.update_matching("db", "entries", {"_id": "e7", "$and": [{"rank": 7}]},
                                          {"$set": {"status": "read"}})
        unchanged = storage.update_matching("db", "entries", {"_id": "e8", "$and": [{"rank": 9}]},
                                            {"$set": {"status": "read"}})
        removed = storage.delete_matching("db", "entries", {"_id": {"$in": ["e9", "e10"]}, "$or": [{"rank": 10}]},
                                          limit=1)
        assert scans == []
        assert (changed["modified"], unchanged["matched"], removed) == (1, 0, 1)
        read = {key: storage.update_matching("db", "entries", {"_id": key, "status": "read"}, {"$set": {}})["matched"]
                for key in ("e7", "e8")}
        assert read == {"e7": 1, "e8": 0}
        assert (storage.delete_matching("db", "entries", {"_id": "e9"}),
                storage.delete_matching("db", "entries", {"_id": "e10"})) == (1, 0)
    finally:
        storage.close()


def test_find_and_modify_still_writes_only_what_its_query_matches(connections: Connections) -> None:
    """Over the wire, as the services write: findAndModify with more than `_id` in its query, matching or not."""
    _, writer = connections
    entries = writer["entries"]
    entries.insert_many([{"_id": f"e{n}", "status_rank": n % 3} for n in range(30)])
    assert entries.find_one_and_update({"_id": "e4", "status_rank": {"$not": {"$gte": 2}}},
                                       {"$set": {"status_rank": 2}})["status_rank"] == 1
    assert entries.find_one_and_update({"_id": "e4", "status_rank": {"$not": {"$gte": 2}}},
                                       {"$set": {"status_rank": 0}}) is None
    assert entries.find_one_and_delete({"_id": "e5", "status_rank": 0}) is None
    assert entries.find_one_and_delete({"_id": "e6", "status_rank": 0}) == {"_id": "e6", "status_rank": 0}
    assert entries.find_one({"_id": "e4"}) == {"_id": "e4", "status_rank": 2}
    assert entries.count_documents({}) == 29


UPDATE_PATHS = ("_update_chunk", "_update_matching_single_txn", "_delete_index_entries", "_write_index_entries")


@pytest.fixture
def index_diff_in_this_process(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`updates_rewrite_only_changed_index_entries` installed in this test's process and taken out after it; the
    methods it replaced, to run SecantusDB as shipped beside it."""
    shipped = {name: getattr(Storage, name) for name in UPDATE_PATHS}
    for patched in (*UPDATE_PATHS, "_index_diff_installed"):
        monkeypatch.setattr(Storage, patched, getattr(Storage, patched, False), raising=False)
    mongo_server.updates_rewrite_only_changed_index_entries()
    return shipped


# the indexes of the comparison below: compound, sub-document and dotted keys, a multikey one, sparse, unique, and
# partial ones (on another field, and through `$and`)
DIFFED_INDEXES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("a", {"a": 1}, {}),
    ("a_c", {"a": 1, "c": -1}, {}),
    ("b", {"b": 1}, {}),
    ("b_x", {"b.x": 1}, {}),
    ("tags", {"tags": 1}, {}),
    ("c_open", {"c": 1}, {"partialFilterExpression": {"status": {"$gt": ""}}}),
    ("c_a_open", {"c": 1, "a": -1}, {"partialFilterExpression": {"$and": [{"status": "open"}, {"c": {"$gte": 0}}]}}),
    ("sparse_s", {"s": 1}, {"sparse": True}),
    ("unique_u", {"u": 1}, {"unique": True, "partialFilterExpression": {"u": {"$gt": 0}}}),
]
_values = st.one_of(st.integers(-2, 2), st.sampled_from([1.0, True, "x", "", None, [1, 2], [2, 1], [], {"x": 1}]))
_sub_documents = st.sampled_from([{"x": 1, "y": 2}, {"y": 2, "x": 1}, {"x": 1.0, "y": 2}, {"x": [1, 2]}, {}, 7])
_fields = st.fixed_dictionaries({}, optional={
    "a": _values, "b": _sub_documents, "c": _values, "tags": st.lists(st.sampled_from("pqr"), max_size=3),
    "status": st.sampled_from(["open", "closed", ""]), "s": _values, "u": st.integers(0, 3),
    "text": st.text(max_size=3),
})
_updates = st.one_of(
    _fields.map(lambda fields: {"$set": fields} if fields else {"$set": {"text": "same"}}),
    st.lists(st.sampled_from(["a", "b", "c", "status", "s", "u", "tags"]), min_size=1, max_size=3).map(
        lambda names: {"$unset": dict.fromkeys(names, "")}),
    st.just({"$inc": {"c": 1}}),
    _fields,  # a replacement, as the router saves
)
_steps = st.lists(st.tuples(st.integers(0, 5), st.booleans(), _updates), min_size=1, max_size=12)


def _entries_by_id(storage: Storage, db: str, coll: str) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """(index entries, unique keys taken) of one collection, each naming the `_id` of its document."""
    documents = storage._cursor(secantus.storage._doc_table_for(db, coll))

    def id_of(recordid: int) -> Any:
        documents.reset()
        documents.set_key(db, coll, recordid)
        assert documents.search() == 0, f"an entry of {coll} names a row that is gone"
        return bson.decode(secantus.storage._unframe_doc_value(bytes(documents.get_value()))[1])["_id"]

    def rows(table: str) -> Iterator[tuple[Any, ...]]:
        cursor = storage._cursor(table)
        cursor.reset()
        while cursor.next() == 0:
            key = cursor.get_key()
            if key[0] == db and key[1] == coll:
                yield (*key[2:], cursor.get_value())

    entries = set()
    for name, packed, _ in rows(secantus.storage._IDX_ENTRIES_TABLE):
        kb, recordid = secantus.storage._unpack_entry(packed)
        entries.add((name, kb, id_of(recordid)))
    taken = {(name, kb, id_of(recordid)) for name, kb, recordid in rows(secantus.storage._UNIQ_TABLE)}
    return entries, taken


def test_an_update_leaves_the_index_entries_secantus_would_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   index_diff_in_this_process: dict[str, Any]) -> None:
    """The same documents updated the same way, one collection with the changed entries alone rewritten and one as
    SecantusDB ships: the same index entries and unique keys, for the same documents, and the same refusals."""
    storage = Storage(str(tmp_path / "data"), enable_oplog=False)
    examples = iter(range(1_000_000))

    def run(coll: str, documents: list[dict[str, Any]], steps: list[tuple[int, bool, dict[str, Any]]]) -> list[str]:
        for name, key, options in DIFFED_INDEXES:
            storage.create_index("db", coll, name, key, options)
        outcomes = []
        for document in documents:
            try:
                storage.insert("db", coll, [dict(document)])
                outcomes.append("inserted")
            except Exception as exc:  # a refusal must be the same on both sides
                outcomes.append(type(exc).__name__)
        for number, every, update in steps:
            try:
                found = storage.update_matching("db", coll, {} if every else {"_id": number}, dict(update), multi=every)
                outcomes.append(f"{found['matched']}/{found['modified']}")
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        return outcomes

    @settings(max_examples=150, deadline=None)
    @given(documents=st.lists(_fields, min_size=1, max_size=6), steps=_steps)
    def the_same_entries(documents: list[dict[str, Any]], steps: list[tuple[int, bool, dict[str, Any]]]) -> None:
        documents = [{"_id": number, **fields} for number, fields in enumerate(documents)]
        example = next(examples)
        diffed = run(f"diffed{example}", documents, steps)
        with monkeypatch.context() as shipped:
            for name, method in index_diff_in_this_process.items():
                shipped.setattr(Storage, name, method)
            as_shipped = run(f"shipped{example}", documents, steps)
        assert diffed == as_shipped
        assert _entries_by_id(storage, "db", f"diffed{example}") == _entries_by_id(storage, "db", f"shipped{example}")
        assert (storage.find_matching("db", f"diffed{example}", {})
                == storage.find_matching("db", f"shipped{example}", {}))

    try:
        the_same_entries()
    finally:
        storage.close()


@pytest.fixture
def ttl_release_in_this_process(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`ttl_sweeps_release_their_pages` installed in this test's process and taken out after it; the sweep it
    replaced, to run SecantusDB as shipped beside it."""
    shipped = Storage.prune_ttl
    for patched in ("prune_ttl", "_ttl_release_installed"):
        monkeypatch.setattr(Storage, patched, getattr(Storage, patched, False), raising=False)
    mongo_server.ttl_sweeps_release_their_pages()
    return shipped


def _positioned_tables(storage: Storage) -> list[str]:
    """The tables on which this thread's cached cursors rest (each holding a hazard pointer on that page)."""
    positioned = []
    for (table, _), cursor in storage._tls.cursors.items():
        try:
            cursor.get_key()
        except Exception:  # WiredTiger refuses a key to a cursor that rests nowhere
            continue
        positioned.append(table)
    return positioned


def test_a_ttl_sweep_leaves_no_cursor_resting_on_a_page(tmp_path: Path, ttl_release_in_this_process: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a sweep read, expired or not, it lets go of before it lets go of the lock: as shipped, its cursors rest
    on the last pages it read until its next sweep (the 14 to 17 s stalls of docs/benchmarks.md)."""
    storage = Storage(str(tmp_path / "data"), enable_oplog=False)
    try:
        storage.create_index("db", "sessions", "seen_at", {"seen_at": 1}, {"expireAfterSeconds": 60})
        now = datetime.now(UTC)
        storage.insert("db", "sessions", [{"_id": number, "seen_at": now - timedelta(hours=number % 2)}
                                          for number in range(200)])
        pruned = storage.prune_ttl_all_collections()
        assert pruned == 100
        assert _positioned_tables(storage) == []
        assert storage.count_matching("db", "sessions", {}) == 100

        monkeypatch.setattr(Storage, "prune_ttl", ttl_release_in_this_process)
        storage.insert("db", "sessions", [{"_id": 1000, "seen_at": now - timedelta(days=1)}])
        assert storage.prune_ttl_all_collections() == 1
        assert _positioned_tables(storage) != []  # as shipped: the sweep's cursors stay where it read
    finally:
        storage.close()
