"""Counting mode: how many database and cache round trips, and how many Kafka records, a process spends — so a
benchmark can say what one message costs, and a test can hold the standard journey to a budget (issue 17).

Off unless PARLEY_COUNT_ROUND_TRIPS is true (`InfraSettings.count_round_trips`): then the MongoDB client gets a
command listener (one count per command sent, `getMore` included), the Redis client a connection class that counts
each packed send (a pipeline or a script call is one), and the event publishers count each record handed to the
producer. The counts are the Prometheus counter `parley_round_trips_total{kind}` on the service's `/metrics`;
`parley_round_trip_commands_total{kind,command}` tells which ones (a database command with its collection, a
cache send by its first command), so a journey's round trips can be listed one by one.
When off, no listener or connection class is installed and `count` is one global test."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from pymongo import monitoring
from redis.asyncio.connection import Connection

DATABASE, CACHE, KAFKA_PRODUCED = "database", "cache", "kafka_produced"
KINDS = (DATABASE, CACHE, KAFKA_PRODUCED)
ROUND_TRIPS = Counter("parley_round_trips", "Round trips (database, cache) and Kafka records produced by this "
                      "process; counted only in counting mode (PARLEY_COUNT_ROUND_TRIPS)", ["kind"])
COMMANDS = Counter("parley_round_trip_commands", "Database and cache round trips by command (database: command "
                   "and collection; cache: the first command of the send); counted only in counting mode",
                   ["kind", "command"])
_counting = {"on": False}


def enable() -> None:
    """Count from now on: call before the clients are built (parley_common.runtime does)."""
    _counting["on"] = True


def enabled() -> bool:
    return _counting["on"]


def count(kind: str, times: int = 1) -> None:
    if _counting["on"]:
        ROUND_TRIPS.labels(kind).inc(times)


class _CommandCounter(monitoring.CommandListener):
    def started(self, event: monitoring.CommandStartedEvent) -> None:
        ROUND_TRIPS.labels(DATABASE).inc()
        COMMANDS.labels(DATABASE, database_command(event.command_name, event.command)).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class _CountingConnection(Connection):
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        ROUND_TRIPS.labels(CACHE).inc()
        COMMANDS.labels(CACHE, cache_command(command)).inc()
        await super().send_packed_command(command, check_health)


def database_command(name: str, command: Any) -> str:
    """`find conversations`: the command and the collection it names (`getMore` names it as `collection`)."""
    target = command.get(name) if name != "getMore" else command.get("collection")
    return f"{name} {target}" if isinstance(target, str) else name


def cache_command(packed: Any) -> str:
    """The first command of a packed send (RESP: `*<n>`, `$<len>`, then the command's name): a pipeline or a
    transaction by its first command (`MULTI`), a script call as `EVALSHA`."""
    first = packed if isinstance(packed, bytes | str) else next(iter(packed), b"")
    lines = (first.encode() if isinstance(first, str) else bytes(first)).split(b"\r\n", 3)
    return lines[2].decode(errors="replace").upper() if len(lines) > 2 else "?"


def mongo_options() -> dict[str, Any]:
    """Extra options of a MongoDB client: the command listener in counting mode, nothing otherwise."""
    return {"event_listeners": [_CommandCounter()]} if enabled() else {}


def redis_options() -> dict[str, Any]:
    """Extra options of a Redis client: the counting connection class in counting mode, nothing otherwise. A
    `rediss://` URL brings its own (TLS) connection class, so under TLS no cache round trips are counted."""
    return {"connection_class": _CountingConnection} if enabled() else {}


def read_counts(metrics_text: str) -> dict[str, float]:
    """The counts in a `/metrics` answer (Prometheus text format), every kind present (0 when never counted)."""
    found = dict.fromkeys(KINDS, 0.0)
    for line in metrics_text.splitlines():
        if line.startswith("parley_round_trips_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('kind="', 1)[1].split('"', 1)[0]] = float(value)
    return found


def read_commands(metrics_text: str) -> dict[tuple[str, str], float]:
    """(kind, command) → count, from a `/metrics` answer (what `parley_round_trip_commands_total` counted)."""
    found: dict[tuple[str, str], float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("parley_round_trip_commands_total{"):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(pair.split("=", 1) for pair in labels.split("{", 1)[1].rstrip("}").split('",'))
            kind, command = (pairs[name].strip('"') for name in ("kind", "command"))
            found[kind, command] = float(value)
    return found
