"""Range parsing, retry backoff and retention arithmetic."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_media.domain.model import expires_at, inbound_media_id
from parley_media.domain.ranges import ByteRange, Unsatisfiable, parse_range
from parley_media.domain.retry import Backoff, is_retryable_status


def test_ranges() -> None:
    assert parse_range("bytes=0-99", 1000) == ByteRange(0, 99)
    assert parse_range("bytes=900-", 1000) == ByteRange(900, 999)
    assert parse_range("bytes=-100", 1000) == ByteRange(900, 999)
    assert parse_range("bytes=990-5000", 1000) == ByteRange(990, 999)
    assert parse_range(None, 1000) is None
    assert parse_range("bytes=0-1,5-6", 1000) is None
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=1000-", 1000)


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=0, max_value=10**9),
       st.integers(min_value=0, max_value=10**9))
def test_a_satisfiable_range_stays_inside_the_content(size: int, start: int, end: int) -> None:
    try:
        selected = parse_range(f"bytes={start}-{end}", size)
    except Unsatisfiable:
        assert start >= size or end < start
        return
    assert selected is not None
    assert 0 <= selected.start <= selected.end < size


@given(st.integers(min_value=1, max_value=50))
def test_backoff_grows_and_is_capped(attempt: int) -> None:
    backoff = Backoff(base_seconds=1, max_seconds=60, max_attempts=6)
    assert backoff.delay(attempt) <= 60
    assert backoff.delay(attempt + 1) >= backoff.delay(attempt)
    assert backoff.exhausted(attempt) == (attempt >= 6)


def test_retryable_statuses() -> None:
    assert is_retryable_status(503) and is_retryable_status(429) and is_retryable_status(404)
    assert not is_retryable_status(403) and not is_retryable_status(400)


def test_retention_is_thirty_days_by_default_arithmetic() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert expires_at(start, 30) == start + timedelta(days=30)


def test_media_ids_are_stable_tenant_scoped_and_keyed() -> None:
    key = b"k" * 32
    assert inbound_media_id(key, "a", "wa", "x.0") == inbound_media_id(key, "a", "wa", "x.0")
    assert inbound_media_id(key, "a", "wa", "x.0") != inbound_media_id(key, "b", "wa", "x.0")
    assert inbound_media_id(key, "a|wa", "", "x.0") != inbound_media_id(key, "a", "wa|", "x.0")
    # Without the key the id cannot be computed from what a provider or a customer knows.
    assert inbound_media_id(key, "a", "wa", "x.0") != inbound_media_id(b"j" * 32, "a", "wa", "x.0")
    unkeyed = hashlib.sha256(b"a|wa|x.0").hexdigest()[:32]
    assert inbound_media_id(key, "a", "wa", "x.0") != f"m_{unkeyed}"
