"""The patches of library internals the Kafka plumbing needs, each with its reason and the test that fails when an
upgrade moves its seam (aiokafka and FastStream are pinned in constraints.txt):

- `pace_idle_fetches` (aiokafka's fetcher): the local broker answers an empty fetch at once instead of holding it
  (no long poll), so an idle consumer would spin; tests/common/integration/test_idle_fetch_pacing.py. Consumers
  idle a while are watched together, one fetch for all of a process's (`IdleWatch`);
  tests/common/integration/test_idle_watch.py.
  `pace_lane` gives one consumer a longer bound than the process's (same test). `linger_batches` lets a lane's
  batch that is not full wait a moment for more records (tests/common/integration/test_batch_latency.py).
- `reuse_unchanged_fetches` (aiokafka's fetcher and fetch protocol): an idle consumer's unchanged request is built
  and encoded once and the broker's unchanged answer decoded once; tests/common/integration/test_idle_fetch_reuse.py.
  `fetches_coded_directly` (aiokafka's fetch protocol): a fetch request is written and its answer read with a few
  `struct` calls per partition instead of aiokafka's generic field-by-field coder;
  tests/common/unit/test_fetch_coding.py.
- `take_batches_without_idle_sleep` (FastStream's batch subscriber): a sleep after an empty wait delayed the next
  record; tests/common/integration/test_batch_latency.py.
- `rejoin_on_empty_assignment` and `rejoin_on_empty_protocol` (aiokafka's group join) live in `parley_common.rejoin`,
  with the rest of a replica's takeover; the first has no test of its own (the race it answers is timing-dependent),
  the second is tested on the answer itself (tests/common/unit/test_rejoin.py)."""

from __future__ import annotations

import asyncio
import functools
import io
import struct
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import aiokafka
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v11, FetchResponse_v11
from faststream.kafka.subscriber.usecase import BatchSubscriber

IDLE_FETCH_BACKOFF_MS = 40
FIRST_IDLE_PAUSE_MS = 5
_idle_fetch_backoff = {"longest": 0.0}


def idle_pause(previous: float, longest: float) -> float:
    """The pause after a fetch, given the one before it (0 when this fetch brought records): it doubles
    from FIRST_IDLE_PAUSE_MS up to `longest` (seconds), so a consumer that just emptied its partitions looks
    again soon, and one that stays idle fetches 1/`longest` times a second."""
    return min(longest, max(FIRST_IDLE_PAUSE_MS / 1000, previous * 2))


def parks(pause: float, longest: float, answered_in: float) -> bool:
    """Whether a consumer, after an empty fetch answered in `answered_in` seconds, leaves its next fetches to the
    process's `IdleWatch` instead of pausing: once its pauses reached their bound (it has been idle a while), and
    only where the broker answered at once — a broker that held the fetch (Kafka's long poll) already spends
    nothing while nothing comes, and the watcher's fetch would be held as long while a consumer parking meanwhile
    went unwatched."""
    return pause >= longest and answered_in < longest


def pace_idle_fetches(longest_ms: int) -> None:
    """After a fetch that brought no records, pause before the next fetch to that broker: from 5 ms, doubling
    while the consumer stays idle, up to `longest_ms` — the most a record arriving at an idle consumer waits. After
    one that brought records, 5 ms too (once they are handed to their reader): a record arriving meanwhile waits
    up to that, and the fetch that would have found nothing is not sent.

    Kafka holds an empty fetch for `fetch_max_wait_ms` (a long poll); the local broker (noida-db) answers it at
    once, so an idle aiokafka consumer re-fetched ~2,400 times a second and burned half a core — the router's six
    consumers a whole core while idle (measured; docs/benchmarks.md). Against Kafka the pause follows a long poll
    that already waited, so it costs nothing. Against the local broker a fixed 10 ms pause left an idle consumer
    at 3.6 % of a core (45 fetches/s on a loaded machine); 40 ms at its longest, 1.5 % (20 fetches/s), and a
    record still read within 50 ms of arriving. Once a consumer's pauses reached the bound, its fetches are left to
    the process's `IdleWatch` (`parks`; with `reuse_unchanged_fetches` applied too, as `make_broker` does): one
    fetch per bound for all the process's idle consumers. aiokafka 0.14's
    fetcher is pinned (`_proc_fetch_request`, `_notify`, `_wait_consume_future`); tests/common/integration checks
    the effect, so an upgrade that moves this seam fails loudly."""
    _idle_fetch_backoff["longest"] = longest_ms / 1000
    original = getattr(Fetcher._proc_fetch_request, "__wrapped__", Fetcher._proc_fetch_request)

    @functools.wraps(original)
    async def fetch_then_pace(self: Fetcher, *args: Any) -> bool:
        sent = time.monotonic()
        has_new_data: bool = await original(self, *args)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # cancelled while out (the consumer stopping, or its partitions taken away), which aiokafka's fetch
            # answers by returning: nothing would wake a parked fetch, and `stop` waits for it
            return has_new_data
        longest = _idle_fetch_backoff["longest"]
        longest = getattr(self, "_parley_lane_longest", longest) if longest else 0.0  # 0: pacing off everywhere
        if not longest:
            return has_new_data
        if has_new_data:
            # the records go to their reader now (the fetcher would wake it only once this returns), and the next
            # fetch waits the shortest pause: at once, it would ask every partition again for what has hardly
            # arrived — an empty fetch per fetch that brought records
            for waiter in list(self._fetch_waiters):
                self._notify(waiter)
        previous = 0.0 if has_new_data else getattr(self, "_parley_idle_pause", 0.0)
        pause = self._parley_idle_pause = idle_pause(previous, longest)
        try:
            assignment, node_id, request = args
            built = self.__dict__.get("_parley_built_with", ())
            if parks(pause, longest, time.monotonic() - sent) and node_id in built:
                await _idle_watch().park(self, assignment, node_id, request, longest)
            else:  # not idle a while, a broker that long-polls, or no `reuse_unchanged_fetches` to tell what is stale
                await asyncio.sleep(pause)
        except asyncio.CancelledError:  # the fetcher closing: it awaits this task and expects no error
            return False
        return has_new_data

    Fetcher._proc_fetch_request = fetch_then_pace
    notify = getattr(Fetcher._notify, "__wrapped__", Fetcher._notify)

    @functools.wraps(notify)
    def notify_and_unpark(self: Fetcher, future: Any) -> None:
        notify(self, future)
        if future is self._wait_consume_future:
            _wake(list(self.__dict__.get("_parley_parked", {}).values()))

    Fetcher._notify = notify_and_unpark


ASKING_AT_MOST = 2.0  # seconds: the watcher's fetch asks through one parked consumer's connection, for them all
# uvloop's clock and timers count whole milliseconds: a timer fires up to one early, and a sleep for what is left of
# it fires at once, again and again until the clock moves on (a spin), so a due time less than a step away has come
LOOP_CLOCK_STEP = 0.001


@dataclass(eq=False)
class _Parked:
    """A consumer's fetch task waiting, idle, for the watcher to see something for it at `request`'s positions."""

    fetcher: Fetcher
    node_id: int
    request: FetchRequest
    longest: float
    woken: asyncio.Future[None]


class IdleWatch:
    """The idle consumers of one event loop, asked with one fetch (`pace_idle_fetches`).

    A consumer that stayed idle until its pauses reached their bound parks its fetch task here instead of sleeping
    and fetching again: every bound, one request asks the broker for the partitions of every parked consumer, from
    their positions, and only a consumer one of whose partitions has a record or an error is woken, to fetch for
    itself as before. A process with two idle consumers then sends one idle fetch per bound instead of two: an idle
    fetch costs its process ~0.5 ms of CPU mostly in waking up, whatever it asks (docs/benchmarks.md, "What an
    idle fetch is made of"). A parked consumer also wakes at once when its own state moves: records consumed, a
    seek or an offset reset (the fetcher's `_notify` of its `_wait_consume_future`, hooked: the fetch loop replaces
    that future every `fetcher_timeout` even while idle, so waiting on one would miss the next), a paused partition
    resumed, its assignment lost. A fetch whose loop went round while it was out is not parked at all: a partition
    given back meanwhile may be missing from its request (`reuse_unchanged_fetches` notes the future each request
    was built with). The fetcher cancels a parked fetch when it closes."""

    def __init__(self) -> None:  # one per event loop (`_idle_watch`), which it does not hold: it runs in it
        self._parked: dict[tuple[Fetcher, int], _Parked] = {}
        self._due_at = float("inf")  # the watcher's next fetch (loop time)
        self._sleeping: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unions: dict[int, tuple[list[FetchRequest], FetchRequest]] = {}  # node → parked requests, union
        self._last_answer: dict[int, Any] = {}  # node → the union's last answer

    async def park(self, fetcher: Fetcher, assignment: Any, node_id: int, request: FetchRequest,
                   longest: float) -> None:
        """Returns when the watcher saw a record or an error at one of `request`'s partitions, or the fetcher's
        state moved: then its fetch loop builds its next request as it would after a pause."""
        states = [assignment.state_value(tp) for tp in assignment.tps]
        moved = [assignment.unassign_future, *(state.resume_fut for state in states if state.paused)]
        consumed = fetcher._wait_consume_future
        if consumed is None or consumed.done() or any(future.done() for future in moved):
            return
        if fetcher._parley_built_with.get(node_id) is not consumed:
            # the fetch loop went round since it built `request` (a partition given back while it was out may be
            # missing from it): its next request is built instead of this one parked
            return
        loop = asyncio.get_running_loop()
        parked = _Parked(fetcher, node_id, request, longest, loop.create_future())
        fetcher.__dict__.setdefault("_parley_parked", {})[node_id] = parked  # what `_notify` wakes
        self._parked[(fetcher, node_id)] = parked
        self._ask_by(loop.time() + longest)
        try:
            await asyncio.wait([parked.woken, *moved], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if fetcher._parley_parked.get(node_id) is parked:
                del fetcher._parley_parked[node_id]
            if self._parked.get((fetcher, node_id)) is parked:
                del self._parked[(fetcher, node_id)]

    def _ask_by(self, due_at: float) -> None:
        if due_at < self._due_at:
            self._due_at = due_at
            if self._sleeping is not None and not self._sleeping.done():
                self._sleeping.set_result(None)  # the watcher sleeps past it: it reckons its sleep anew
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._parked:
            delay = self._due_at - loop.time()
            if delay > LOOP_CLOCK_STEP:
                self._sleeping = loop.create_future()
                timer = loop.call_later(delay, _resolve, self._sleeping)
                try:
                    await self._sleeping
                finally:
                    timer.cancel()
                continue
            self._due_at = float("inf")
            by_node: dict[int, list[_Parked]] = defaultdict(list)
            for parked in list(self._parked.values()):
                by_node[parked.node_id].append(parked)
            for node_id, parked_at_node in by_node.items():
                await self._ask(node_id, parked_at_node)
            if self._parked:
                self._ask_by(loop.time() + min(parked.longest for parked in self._parked.values()))
        self._unions.clear()
        self._last_answer.clear()

    async def _ask(self, node_id: int, parked: list[_Parked]) -> None:
        requests = [each.request for each in parked]
        known = self._unions.get(node_id)
        if known is None or list(map(id, known[0])) != list(map(id, requests)):  # held: no id is reused meanwhile
            known = self._unions[node_id] = (requests, _union(requests))
            self._last_answer.pop(node_id, None)
        try:
            async with asyncio.timeout(ASKING_AT_MOST):
                answer = await parked[0].fetcher._client.send(node_id, known[1])
        except (Exception, asyncio.CancelledError):  # each parked consumer fetches for itself again
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the loop shutting down, not the connection
                raise
            _wake(parked)  # the consumer whose connection asked closed (a stopped consumer), or it broke or hung
            return
        if answer is self._last_answer.get(node_id):  # the same bytes as before: no record (`_decode_once`)
            return
        self._last_answer[node_id] = answer
        if getattr(answer, "error_code", 0):
            _wake(parked)
            return
        news = {(topic, partition[0]) for topic, partitions in answer.topics for partition in partitions
                if partition[1] or partition[-1]}  # an error code, or records
        if news:
            _wake([each for each in parked if any(
                (topic, asked[0]) in news for topic, partitions in each.request.topics for asked in partitions)])


def _union(requests: list[FetchRequest]) -> FetchRequest:
    """One request for the partitions of all `requests` (a partition asked twice: from the lower position)."""
    if len(requests) == 1:
        return requests[0]  # its encoding is kept (`reuse_unchanged_fetches`)
    lowest: dict[tuple[str, int], tuple[int, int, int]] = {}
    for request in requests:
        for topic, partitions in request.topics:
            for asked in partitions:
                known = lowest.get((topic, asked[0]))
                if known is None or asked[1] < known[1]:
                    lowest[(topic, asked[0])] = asked
    by_topic: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for (topic, _), asked in lowest.items():
        by_topic[topic].append(asked)
    first = requests[0]
    return FetchRequest(first._max_wait_ms, first._min_bytes, first._max_bytes, first._isolation_level,
                        list(by_topic.items()), rack_id=first._rack_id)


def _wake(parked: list[_Parked]) -> None:
    for each in parked:
        _resolve(each.woken)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleWatch] = weakref.WeakKeyDictionary()


def _idle_watch() -> IdleWatch:
    loop = asyncio.get_running_loop()
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = IdleWatch()
    return watch


def reuse_unchanged_fetches() -> None:
    """An idle consumer's fetch asks every partition from the same positions as the one before, and the local broker
    answers it with the same bytes: the request is encoded once and the answer decoded once, while nothing moves.

    Each fetch, aiokafka builds a new request (its partitions shuffled), encodes it and decodes the answer field by
    field through its protocol structs, in Python: most of an idle fetch's own work, in proportion to its partitions
    (docs/benchmarks.md, "What an idle fetch is made of"). Here the fetcher sends the previous request again, in the
    same order, when it asks the same node for the same partitions from the same positions (the shuffle spreads
    records across partitions when an answer is cut at `fetch_max_bytes`; an unchanged request follows one that
    brought no record); the request's encoded bytes are kept on it; and an answer carrying no record whose bytes
    equal an earlier one's is that earlier answer's decoded value (read-only everywhere in aiokafka). Any position
    that moves (records read, a seek, a reset, a new assignment) builds and encodes a new request as before.
    aiokafka 0.14 is pinned (the fetcher's `_get_actions_per_node`, `FetchRequest.prepare`, the fetch answers'
    `decode`); tests/common/integration/test_idle_fetch_reuse.py fails if an upgrade moves these seams. The requests
    and answers it does code are coded by `fetches_coded_directly`. It also notes, per node, the fetch loop's consume
    future each request was built with, which `IdleWatch.park` checks."""
    if aiokafka.__version__ != "0.14.0":
        raise RuntimeError(f"reuse_unchanged_fetches patches aiokafka 0.14.0's fetcher, not {aiokafka.__version__}")
    fetches_coded_directly()
    if getattr(Fetcher._get_actions_per_node, "__wrapped__", None):
        return
    build_actions = Fetcher._get_actions_per_node
    prepare = FetchRequest.prepare

    @functools.wraps(build_actions)
    def actions_reusing_requests(self: Fetcher, assignment: Any) -> Any:
        parked = self.__dict__.get("_parley_parked")
        if parked and len(parked) >= len(self._client.cluster.brokers()):
            # every node's fetch is parked (`IdleWatch`): nothing to send, though the fetch loop goes round every
            # `fetcher_timeout` and would look at each partition to find that out
            return [], {}, self._fetcher_timeout, False, []
        fetch_requests, *other_actions = build_actions(self, assignment)
        previous: dict[int, tuple[frozenset[Any], FetchRequest]] = self.__dict__.setdefault("_parley_requests", {})
        built_with = self.__dict__.setdefault("_parley_built_with", {})  # what `IdleWatch.park` checks
        for index, (node_id, request) in enumerate(fetch_requests):
            built_with[node_id] = self._wait_consume_future
            asked = frozenset((topic, *partition) for topic, partitions in request.topics for partition in partitions)
            if node_id in previous and previous[node_id][0] == asked:
                fetch_requests[index] = (node_id, previous[node_id][1])
            else:
                previous[node_id] = (asked, request)
        return (fetch_requests, *other_actions)

    @functools.wraps(prepare)
    def prepare_once(self: FetchRequest, versions: dict[int, tuple[int, int]]) -> Any:
        prepared = self.__dict__.get("_parley_prepared")
        if prepared is None or prepared[0] is not versions:  # a new connection may speak another version
            request_struct = prepare(self, versions)
            encoded = request_struct.encode()
            request_struct.encode = lambda: encoded
            prepared = self._parley_prepared = (versions, request_struct)
        return prepared[1]

    Fetcher._get_actions_per_node = actions_reusing_requests
    FetchRequest.prepare = prepare_once
    for response_class in {request_class.RESPONSE_TYPE for request_class in FetchRequest._CLASSES}:
        response_class.decode = classmethod(_decode_once(response_class.decode.__func__))


_RECORDLESS_ANSWERS_KEPT = 64
_LARGEST_ANSWER_KEPT = 64 * 1024  # an answer without records: ~42 bytes a partition


def _decode_once(decode: Any) -> Any:
    """`decode` of a fetch answer class, returning the value already decoded from the same bytes for a small answer
    carrying no record (an idle consumer's; all are dropped once more are kept than a process has consumers)."""
    decoded: dict[bytes, Any] = {}

    @functools.wraps(decode)
    def decode_once(response_class: Any, data: io.BytesIO) -> Any:
        start = data.tell()
        if data.seek(0, io.SEEK_END) - start > _LARGEST_ANSWER_KEPT:  # records: decoded from the buffer as before
            data.seek(start)
            return decode(response_class, data)
        data.seek(start)
        answer = data.read()
        if answer in decoded:
            return decoded[answer]
        response = decode(response_class, answer)
        if not any(partition[-1] for _, partitions in response.topics for partition in partitions):
            if len(decoded) >= _RECORDLESS_ANSWERS_KEPT:
                decoded.clear()
            decoded[answer] = response
        return response

    return decode_once


def pace_lane(consumer: Any, longest_ms: int) -> None:
    """This started consumer's idle fetches pause up to `longest_ms` instead of the process's bound (after
    `pace_idle_fetches`): a lane whose records may wait a moment spends less while idle. The attribute lives on the
    consumer's fetcher (aiokafka 0.14, created by `start`); a consumer created again falls back to the bound."""
    consumer._fetcher._parley_lane_longest = longest_ms / 1000


async def _take_batch_without_idle_sleep(self: BatchSubscriber, consumer: Any) -> tuple[Any, ...]:
    """FastStream 0.7.8's batch subscriber sleeps `batch_timeout_ms` after a `getmany` that waited that long and
    found nothing, so a record arriving during the sleep waited for it (up to 50 ms with our settings: a median
    of 59 ms against ~5 ms in tests/common/integration/test_batch_latency.py, at 100 ms). `getmany` already
    waits, and returns the moment a record arrives, so the sleep only adds latency. FastStream is pinned;
    tests/common/integration/test_batch_latency.py fails if an upgrade moves this seam."""
    records = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    taken = [record for batch in records.values() for record in batch]
    linger, limit = getattr(self, "_parley_linger", 0.0), self.max_records
    if linger and taken and (limit is None or len(taken) < limit):
        await asyncio.sleep(linger)  # what arrives meanwhile joins this batch (`linger_batches`)
        more = await consumer.getmany(timeout_ms=0, max_records=None if limit is None else limit - len(taken))
        taken += [record for batch in more.values() for record in batch]  # after the first: each partition in order
    return tuple(taken)


def linger_batches(subscriber: Any, linger_ms: int) -> None:
    """A batch that is not full waits `linger_ms` for more records before it is handled (Kafka's producer
    `linger.ms`, on the consuming side): for a lane whose cost is per batch (bulk writes) and whose records may wait
    that long, so a low rate still makes batches of several records."""
    subscriber._parley_linger = linger_ms / 1000


def take_batches_without_idle_sleep() -> None:
    BatchSubscriber.get_msg = _take_batch_without_idle_sleep  # type: ignore[method-assign]


_FETCH_REQUEST_HEAD = struct.Struct(">iiiibii")  # replica_id, max_wait, min_bytes, max_bytes, isolation, session
_PARTITION_ASKED = struct.Struct(">iiqqi")  # partition, current_leader_epoch, fetch_offset, log_start_offset, max_bytes
_FETCH_ANSWER_HEAD = struct.Struct(">ihi")  # throttle_time_ms, error_code, session_id
_COUNT = struct.Struct(">i")  # an array's length, or a byte string's (-1: null)
_STRING_LENGTH = struct.Struct(">h")
_PARTITION_HEAD = struct.Struct(">ihqqq")  # partition, error_code, highwater, last_stable and log_start offsets
_ABORTED_TRANSACTION = struct.Struct(">qq")  # producer_id, first_offset
_REPLICA_AND_RECORDS_LENGTH = struct.Struct(">ii")  # preferred_read_replica, message_set's length


def fetches_coded_directly() -> None:
    """A fetch request is written, and its answer read, with one `struct` call per fixed run of fields instead of
    aiokafka's generic coder, which makes several Python calls per field of every partition (FetchRequest and
    FetchResponse v11: the version aiokafka 0.14 speaks with the local broker and with Kafka 2.3+). Whenever records
    flow, each fetch asks from moved positions and gets a different answer, so neither is built once and reused
    (`reuse_unchanged_fetches`), and coding them was a large share of a consumer service's CPU at low rates
    (docs/benchmarks.md, "Fetches coded directly"). The bytes written are aiokafka's, and the answer read is the same
    `FetchResponse_v11` its decoder builds, field for field (tests/common/unit/test_fetch_coding.py compares both on
    generated values); a truncated answer is refused with a ValueError, as aiokafka's is. `reuse_unchanged_fetches`
    applies it first: it wraps whatever decodes an answer then."""
    if aiokafka.__version__ != "0.14.0":
        raise RuntimeError(f"fetches_coded_directly codes aiokafka 0.14.0's fetch v11, not {aiokafka.__version__}")
    if FetchRequest_v11.encode is _encode_fetch_request:  # applied already (the decoder may be wrapped since)
        return
    FetchRequest_v11.encode = _encode_fetch_request
    FetchResponse_v11.decode = classmethod(_decode_fetch_answer)


def _encode_fetch_request(request: FetchRequest_v11) -> bytes:
    fields = request.__dict__
    parts = [_FETCH_REQUEST_HEAD.pack(fields["replica_id"], fields["max_wait_time"], fields["min_bytes"],
                                      fields["max_bytes"], fields["isolation_level"], fields["session_id"],
                                      fields["session_epoch"])]
    topics = fields["topics"]
    parts.append(_COUNT.pack(-1 if topics is None else len(topics)))
    for topic, partitions in topics or ():
        parts.append(_string(topic))
        parts.append(_COUNT.pack(-1 if partitions is None else len(partitions)))
        parts += [_PARTITION_ASKED.pack(*partition) for partition in partitions or ()]
    forgotten = fields["forgotten_topics_data"]
    parts.append(_COUNT.pack(-1 if forgotten is None else len(forgotten)))
    for topic, partitions in forgotten or ():
        parts.append(_string(topic))
        parts.append(_COUNT.pack(-1 if partitions is None else len(partitions)))
        parts += [_COUNT.pack(partition) for partition in partitions or ()]
    parts.append(_string(fields["rack_id"]))
    return b"".join(parts)


def _string(value: str | None) -> bytes:
    if value is None:
        return _STRING_LENGTH.pack(-1)
    encoded = str(value).encode("utf-8")
    return _STRING_LENGTH.pack(len(encoded)) + encoded


def _decode_fetch_answer(response_class: type[FetchResponse_v11], data: io.BytesIO | bytes) -> FetchResponse_v11:
    answer = data.read() if isinstance(data, io.BytesIO) else data
    try:
        return response_class(*_fetch_answer_fields(answer))
    except struct.error as exc:
        raise ValueError(f"Buffer underrun decoding a fetch answer: {exc}") from exc


def _fetch_answer_fields(answer: bytes) -> tuple[Any, ...]:
    """The answer's fields as aiokafka's decoder gives them: arrays as lists (None when null), their items as
    tuples, strings decoded, byte strings as bytes (None when null)."""
    throttle_time_ms, error_code, session_id = _FETCH_ANSWER_HEAD.unpack_from(answer, 0)
    (topic_count,), at = _COUNT.unpack_from(answer, 10), 14
    topics = []
    for _ in range(topic_count):
        (name_length,) = _STRING_LENGTH.unpack_from(answer, at)
        at += 2
        name = None
        if name_length >= 0:
            name, at = _exactly(answer, at, name_length, "string").decode("utf-8"), at + name_length
        (partition_count,), at = _COUNT.unpack_from(answer, at), at + 4
        partitions = []
        for _ in range(partition_count):
            head, at = _PARTITION_HEAD.unpack_from(answer, at), at + _PARTITION_HEAD.size
            (aborted_count,), at = _COUNT.unpack_from(answer, at), at + 4
            aborted = []
            for _ in range(aborted_count):
                aborted.append(_ABORTED_TRANSACTION.unpack_from(answer, at))
                at += _ABORTED_TRANSACTION.size
            replica, length = _REPLICA_AND_RECORDS_LENGTH.unpack_from(answer, at)
            at += _REPLICA_AND_RECORDS_LENGTH.size
            records = None
            if length >= 0:
                records, at = _exactly(answer, at, length, "Bytes"), at + length
            partitions.append((*head, None if aborted_count == -1 else aborted, replica, records))
        topics.append((name, None if partition_count == -1 else partitions))
    return throttle_time_ms, error_code, session_id, None if topic_count == -1 else topics


def _exactly(answer: bytes, at: int, length: int, what: str) -> bytes:
    value = answer[at:at + length]
    if len(value) != length:
        raise ValueError(f"Buffer underrun decoding {what}")
    return value
