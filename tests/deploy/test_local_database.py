"""The local database as deploy/local runs it: without an oplog, which only change streams read and Parley opens
none, transactions working all the same; timing its commands for benchmarks (`--command-cpu`,
deploy/local/mongo_command_cpu.py): each command shape's count, documents and CPU, the filter's fields named and
its values left out. (That it loses nothing acknowledged to a kill -9: tests/faults/test_server_kills.py.)"""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "local"))

import mongo_command_cpu  # noqa: E402


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


@pytest.fixture
def timed_database(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A throwaway local database on a free port, as deploy/local/infra.py starts it, timing its commands."""
    port, totals = _free_port(), tmp_path / "command-cpu.json"
    server = subprocess.Popen([sys.executable, str(REPO / "deploy/local/mongo_server.py"), "--port", str(port),
                               "--storage-path", str(tmp_path / "data"), "--command-cpu", str(totals)],
                              start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false", totals
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


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
