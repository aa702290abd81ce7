"""`parley`: the operator's command line. `parley dlq list|show|replay` reads `parley.dlq.v1` and re-drives what
failed (docs/dead-letters.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from parley_common.connections import Connections, kafka_client_options
from parley_common.dead_letters import (
    LetterRef,
    NotReplayable,
    Selection,
    described,
    parse_moment,
    replay_record,
    summary_line,
)
from parley_common.events.dlq import DeadLetter
from parley_common.settings import describe_validation_error
from parley_common.topics import ALL_TOPICS, DEAD_LETTERS

# A partition whose end offset is not reached after this many empty fetches in a row holds no more readable
# records (an end offset past a transaction marker or a compacted gap): stop instead of waiting for ever.
EMPTY_FETCHES_BEFORE_GIVING_UP = 5
FETCH_TIMEOUT_MS = 1000


class UsageError(Exception):
    """What the operator asked for cannot be done as asked (exit status 2, one line on stderr)."""


class LetterReader:
    """Reads `parley.dlq.v1` from the start (or from `since`) to its current end, outside any consumer group: it
    commits nothing and moves no service's offsets."""

    def __init__(self, kafka: Connections, namespace: str) -> None:
        self.topic = DEAD_LETTERS.name(namespace)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=kafka.kafka_bootstrap, enable_auto_commit=False,
                                          group_id=None, auto_offset_reset="earliest", client_id="parley-dlq-cli",
                                          **kafka_client_options(kafka))
        self.unreadable = 0

    async def __aenter__(self) -> LetterReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        await self._consumer.topics()  # fetches the cluster's metadata
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise UsageError(f"no topic {self.topic} on this broker (check --bootstrap and --namespace)")
        return [TopicPartition(self.topic, number) for number in sorted(partitions)]

    async def letters(self, since: datetime | None = None) -> AsyncIterator[tuple[LetterRef, DeadLetter]]:
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        ends = await self._consumer.end_offsets(partitions)
        await self._seek_from(partitions, since, ends)
        empty_fetches = 0
        while empty_fetches < EMPTY_FETCHES_BEFORE_GIVING_UP:
            pending = [tp for tp in partitions if await self._consumer.position(tp) < ends[tp]]
            if not pending:
                return
            batches = await self._consumer.getmany(*pending, timeout_ms=FETCH_TIMEOUT_MS)
            empty_fetches = 0 if batches else empty_fetches + 1
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        letter = self._parsed(record.value)
                        if letter is not None:
                            yield LetterRef(tp.partition, record.offset), letter

    async def _seek_from(self, partitions: list[TopicPartition], since: datetime | None,
                         ends: dict[TopicPartition, int]) -> None:
        # A letter is written after it happened, so its record's timestamp is never before its occurred_at: the
        # first record stamped at or after `since` is where letters that happened since can start.
        # Explicit offsets: seek_to_beginning only asks for a reset, which raced the consumer's own first one.
        starts = await self._consumer.beginning_offsets(partitions)
        if since is not None:
            found = await self._consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
            starts = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}
        for tp in partitions:
            self._consumer.seek(tp, starts[tp])

    async def one(self, ref: LetterRef) -> DeadLetter:
        tp = TopicPartition(self.topic, ref.partition)
        if tp not in await self._partitions():
            raise UsageError(f"{self.topic} has no partition {ref.partition}")
        self._consumer.assign([tp])
        self._consumer.seek(tp, ref.offset)
        batches = await self._consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS * 5, max_records=1)
        records = batches.get(tp, [])
        if not records or records[0].offset != ref.offset:
            raise UsageError(f"no dead letter at {ref} (expired, or not written yet)")
        letter = self._parsed(records[0].value)
        if letter is None:
            raise UsageError(f"the record at {ref} is not a dead letter this version can read")
        return letter

    def _parsed(self, value: bytes | None) -> DeadLetter | None:
        try:
            letter: DeadLetter = DEAD_LETTERS.parse(value or b"")
        except ValidationError:
            self.unreadable += 1
            return None
        return letter


def _connections(args: argparse.Namespace) -> Connections:
    """The broker named by --bootstrap, reached as the services reach it (PARLEY_KAFKA_SECURITY_PROTOCOL, TLS
    files and SASL credentials from the environment, parley_common.connections)."""
    try:
        return Connections(kafka_bootstrap=args.bootstrap)
    except ValidationError as exc:
        raise UsageError(describe_validation_error(exc, "PARLEY_")) from None


def _selection(args: argparse.Namespace, now: datetime) -> Selection:
    topic = args.topic
    if topic and args.namespace and not topic.startswith(f"{args.namespace}."):
        topic = f"{args.namespace}.{topic}"
    try:
        since = parse_moment(args.since, now) if args.since else None
        until = parse_moment(args.until, now) if args.until else None
    except ValueError as exc:
        raise UsageError(f"--since/--until: {exc}") from None
    return Selection(reason=args.reason, source_topic=topic, tenant_id=args.tenant, service=args.service,
                     since=since, until=until)


async def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    selection = _selection(args, datetime.now(UTC))
    newest: deque[tuple[LetterRef, DeadLetter]] = deque(maxlen=args.limit)
    matched = 0
    async with LetterReader(_connections(args), args.namespace) as reader:
        async for ref, letter in reader.letters(selection.since):
            if selection.matches(letter):
                matched += 1
                newest.append((ref, letter))
        unreadable = reader.unreadable
    for ref, letter in sorted(newest, key=lambda item: item[1].occurred_at):
        out.write((json.dumps(described(ref, letter)) if args.json else summary_line(ref, letter)) + "\n")
    note = f" ({unreadable} records not readable as dead letters skipped)" if unreadable else ""
    err.write(f"{matched} matching dead letter(s), {len(newest)} shown{note}\n")
    return 0


async def _show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    ref = LetterRef.parse(args.ref)
    async with LetterReader(_connections(args), args.namespace) as reader:
        letter = await reader.one(ref)
    if args.value:
        text = described(ref, letter)["original_value"]
        out.write((text if isinstance(text, str) else json.dumps(text)) + "\n")
    else:
        out.write(json.dumps(described(ref, letter), indent=2, ensure_ascii=False) + "\n")
    return 0


async def _chosen(args: argparse.Namespace) -> list[tuple[LetterRef, DeadLetter]]:
    selection = _selection(args, datetime.now(UTC))
    refs = [LetterRef.parse(text) for text in args.refs]
    if not refs and selection.is_everything() and not args.all:
        raise UsageError("replay what? name letters (partition:offset), select them (--reason, --topic, "
                         "--tenant, --service, --since, --until), or say --all")
    async with LetterReader(_connections(args), args.namespace) as reader:
        if refs:
            return [(ref, await reader.one(ref)) for ref in refs]
        return [(ref, letter) async for ref, letter in reader.letters(selection.since) if selection.matches(letter)]


async def _replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    chosen = await _chosen(args)
    known = {topic.name(args.namespace) for topic in ALL_TOPICS}
    kafka = _connections(args)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.kafka_bootstrap, acks="all", enable_idempotence=True,
                                client_id="parley-dlq-cli", **kafka_client_options(kafka))
    skipped = 0
    await producer.start()
    try:
        for ref, letter in chosen:
            try:
                record = replay_record(letter, ref, DEAD_LETTERS.name(args.namespace), known, datetime.now(UTC))
            except NotReplayable as refusal:
                skipped += 1
                err.write(f"skipped {refusal}\n")
                continue
            if not args.dry_run:
                await producer.send_and_wait(record.topic, record.value, key=record.key, headers=record.headers)
            out.write(f"{'would replay' if args.dry_run else 'replayed'} {ref} ({letter.reason}) to {record.topic}\n")
    finally:
        await producer.stop()
    err.write(f"{len(chosen) - skipped} of {len(chosen)} dead letter(s) "
              f"{'to replay' if args.dry_run else 'replayed'}\n")
    return 1 if skipped else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley's operator commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    dlq = commands.add_parser("dlq", help="dead letters on parley.dlq.v1: list, show, replay")
    actions = dlq.add_subparsers(dest="action", required=True)

    def action(name: str, help_text: str, *, selects: bool) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("--bootstrap", default=os.environ.get("PARLEY_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
                         help="Kafka bootstrap servers (default: $PARLEY_KAFKA_BOOTSTRAP)")
        sub.add_argument("--namespace", default=os.environ.get("PARLEY_NAMESPACE", ""),
                         help="the deployment's topic prefix (default: $PARLEY_NAMESPACE)")
        if selects:
            sub.add_argument("--reason", help="e.g. invalid_event, unknown_channel")
            sub.add_argument("--topic", help="the topic the record came from (with or without the namespace)")
            sub.add_argument("--tenant")
            sub.add_argument("--service", help="the service that dead-lettered it, e.g. router")
            sub.add_argument("--since", help="dead-lettered at or after: ISO time, or 30m, 6h, 7d back from now")
            sub.add_argument("--until", help="dead-lettered before: ISO time, or a span back from now")
        return sub

    listing = action("list", "the newest matching dead letters, oldest first", selects=True)
    listing.add_argument("--limit", type=int, default=50, help="show at most this many (the newest; default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, original value decoded")
    show = action("show", "one dead letter, whole", selects=False)
    show.add_argument("ref", help="partition:offset, as `list` prints it")
    show.add_argument("--value", action="store_true", help="only the original record's value")
    replay = action("replay", "re-publish the original records to their topics, key and headers kept",
                    selects=True)
    replay.add_argument("refs", nargs="*", help="partition:offset of letters to replay (else: the selection)")
    replay.add_argument("--all", action="store_true", help="replay every letter when nothing else selects")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed, publish nothing")
    return parser


async def run(argv: Sequence[str], out: TextIO, err: TextIO) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "limit", 1) < 1:
        err.write("parley: --limit must be at least 1\n")
        return 2
    handlers = {"list": _list, "show": _show, "replay": _replay}
    try:
        return await handlers[args.action](args, out, err)
    except (UsageError, ValueError) as problem:
        err.write(f"parley: {problem}\n")
        return 2
    except KafkaError as problem:
        err.write(f"parley: the broker at {args.bootstrap} failed: {type(problem).__name__}: {problem}\n")
        return 3


def main() -> None:
    raise SystemExit(asyncio.run(run(sys.argv[1:], sys.stdout, sys.stderr)))
