"""Reading dead letters back: names of letters, moments, selections and the replayed record (pure)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from parley_common.dead_letters import LetterRef, NotReplayable, Selection, parse_moment, replay_record
from parley_common.events.dlq import DeadLetter

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def letter(**changes: object) -> DeadLetter:
    fields: dict[str, object] = {
        "occurred_at": NOW, "tenant_id": "acme", "correlation_id": "c-1", "service": "router",
        "source_topic": "ns.parley.inbound.messages.v1", "reason": "invalid_event",
        "original_value_base64": base64.b64encode(b"{}").decode(), "original_headers": {"ce_id": "e-1"}}
    return DeadLetter(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_letter_is_named_partition_colon_offset() -> None:
    assert LetterRef.parse("2:140") == LetterRef(2, 140) and str(LetterRef(2, 140)) == "2:140"
    for wrong in ("2", "a:1", "1:-3", ":4", "1:2:3"):
        with pytest.raises(ValueError, match="partition:offset"):
            LetterRef.parse(wrong)


def test_moments_are_iso_times_or_spans_back_from_now() -> None:
    assert parse_moment("90s", NOW) == NOW - timedelta(seconds=90)
    assert parse_moment("6h", NOW) == NOW - timedelta(hours=6)
    assert parse_moment("7d", NOW) == NOW - timedelta(days=7)
    assert parse_moment("2026-01-31T10:00:00Z", NOW) == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert parse_moment("2026-01-31T10:00:00", NOW) == datetime(2026, 1, 31, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_moment("yesterday", NOW)


def test_a_selection_holds_when_every_criterion_does() -> None:
    assert Selection().is_everything() and Selection().matches(letter())
    assert not Selection(reason="x").is_everything()
    assert Selection(reason="invalid_event", tenant_id="acme", service="router",
                     source_topic="ns.parley.inbound.messages.v1").matches(letter())
    assert not Selection(reason="unknown_channel").matches(letter())
    assert Selection(since=NOW, until=NOW + timedelta(seconds=1)).matches(letter())
    assert not Selection(since=NOW + timedelta(seconds=1)).matches(letter())
    assert not Selection(until=NOW).matches(letter())


def test_a_replayed_record_is_the_original_plus_fresh_markers() -> None:
    again = letter(original_key_base64=base64.b64encode(b"acme|wa|1").decode(),
                   original_headers={"ce_id": "e-1", "parley_replay_of": "old:0:1", "parley_replayed_at": "old"})
    record = replay_record(again, LetterRef(1, 9), "ns.parley.dlq.v1", {"ns.parley.inbound.messages.v1"}, NOW)
    assert (record.topic, record.key, record.value) == ("ns.parley.inbound.messages.v1", b"acme|wa|1", b"{}")
    assert dict(record.headers) == {"ce_id": b"e-1", "parley_replay_of": b"ns.parley.dlq.v1:1:9",
                                    "parley_replay_letter_id": str(again.event_id).encode(),
                                    "parley_replayed_at": NOW.isoformat().encode()}
    assert replay_record(letter(), LetterRef(0, 0), "ns.parley.dlq.v1", {"ns.parley.inbound.messages.v1"},
                         NOW).key is None
    with pytest.raises(NotReplayable, match="webhooks/whatsapp/wa"):
        replay_record(letter(source_topic="webhooks/whatsapp/wa"), LetterRef(0, 0), "ns.parley.dlq.v1", set(), NOW)
