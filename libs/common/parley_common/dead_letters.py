"""Reading dead letters back (`parley dlq`): which letters a selection names, what a replayed record carries.

Pure: the Kafka reading and publishing live in `parley_common.dlq_cli`."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from parley_common.events.dlq import DeadLetter

# Headers a replayed record carries besides its original ones, so consumers' logs, a second dead letter (which
# keeps the headers) and anyone reading the topic can tell it was re-driven, from which letter and when.
REPLAY_OF_HEADER = "parley_replay_of"
REPLAY_EVENT_HEADER = "parley_replay_letter_id"
REPLAYED_AT_HEADER = "parley_replayed_at"

_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class NotReplayable(Exception):
    """The letter holds no Kafka record (e.g. a provider's webhook body that ingest could not read)."""


@dataclass(frozen=True, order=True)
class LetterRef:
    """Where a dead letter sits on `parley.dlq.v1`: its partition and offset, written `partition:offset`."""

    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> LetterRef:
        partition, sep, offset = text.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"a dead letter is named partition:offset (as `parley dlq list` prints), not {text!r}")
        return cls(int(partition), int(offset))

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


def parse_moment(text: str, now: datetime) -> datetime:
    """`2026-01-31T10:00:00Z` (timezone-aware, or taken as UTC) or a span back from now: `90s`, `30m`, `6h`, `7d`."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """Which letters an operator means: every given criterion must hold (none given: every letter)."""

    reason: str | None = None
    source_topic: str | None = None
    tenant_id: str | None = None
    service: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def is_everything(self) -> bool:
        return all(value is None for value in vars(self).values())

    def matches(self, letter: DeadLetter) -> bool:
        return ((self.reason is None or letter.reason == self.reason)
                and (self.source_topic is None or letter.source_topic == self.source_topic)
                and (self.tenant_id is None or letter.tenant_id == self.tenant_id)
                and (self.service is None or letter.service == self.service)
                and (self.since is None or letter.occurred_at >= self.since)
                and (self.until is None or letter.occurred_at < self.until))


@dataclass(frozen=True)
class ReplayRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def replay_record(letter: DeadLetter, ref: LetterRef, dead_letter_topic: str, known_topics: set[str],
                  now: datetime) -> ReplayRecord:
    """The original record of `letter` (topic, key, bytes, headers) plus the replay markers; NotReplayable when it
    did not come from one of `known_topics` (ingest's letters hold a provider's request body, not a record)."""
    if letter.source_topic not in known_topics:
        raise NotReplayable(f"{ref} came from {letter.source_topic!r}, not a topic of this deployment: nothing to "
                            "replay (`parley dlq show --value` prints its bytes)")
    if letter.original_truncated:
        raise NotReplayable(f"{ref} holds only the first bytes of a {letter.original_size_bytes}-byte record: the "
                            f"whole one is at {letter.source_topic} partition {letter.partition} offset "
                            f"{letter.offset} (SHA-256 {letter.original_sha256}) until that topic's retention")
    headers = {name: value for name, value in letter.original_headers.items()
               if name not in (REPLAY_OF_HEADER, REPLAY_EVENT_HEADER, REPLAYED_AT_HEADER)}
    headers[REPLAY_OF_HEADER] = f"{dead_letter_topic}:{ref}"
    headers[REPLAY_EVENT_HEADER] = str(letter.event_id)
    headers[REPLAYED_AT_HEADER] = now.isoformat()
    return ReplayRecord(
        topic=letter.source_topic,
        key=base64.b64decode(letter.original_key_base64) if letter.original_key_base64 else None,
        value=base64.b64decode(letter.original_value_base64),
        headers=[(name, value.encode()) for name, value in headers.items()],
    )


def summary_line(ref: LetterRef, letter: DeadLetter, width: int = 80) -> str:
    detail = (letter.detail or "").replace("\n", " ")
    if len(detail) > width:
        detail = detail[: width - 1] + "…"
    return "\t".join((str(ref), letter.occurred_at.isoformat(timespec="seconds"), letter.tenant_id, letter.service,
                      letter.reason, letter.source_topic, detail))


def described(ref: LetterRef, letter: DeadLetter) -> dict[str, Any]:
    """The letter as an operator reads it: its fields, the original key as text and the original value as JSON
    when it is JSON (else as text with undecodable bytes replaced; `--value` gives the exact bytes)."""
    raw = base64.b64decode(letter.original_value_base64)
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw.decode(errors="replace")
    key = base64.b64decode(letter.original_key_base64).decode(errors="replace") if letter.original_key_base64 else None
    fields = letter.model_dump(mode="json", exclude={"original_key_base64", "original_value_base64"})
    return {"ref": str(ref), **fields, "original_key": key, "original_value": value}
