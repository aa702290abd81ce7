"""The retry policy: an outage of a dependency is tried again without limit, anything else ATTEMPTS times."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from hypothesis import given
from hypothesis import strategies as st
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from parley_common import retries


def _raised_from(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("while storing") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("error", [
    ServerSelectionTimeoutError("no server"), AutoReconnect("reset"), NetworkTimeout("slow"),
    RedisConnectionError("refused"), KafkaConnectionError(), ConnectionRefusedError(), TimeoutError(),
    OperationFailure("write conflict", 112, {"errorLabels": ["TransientTransactionError"]}),
    _raised_from(ServerSelectionTimeoutError("no server")), retries.Transient("saved meanwhile"),
])
def test_an_unreachable_or_slow_dependency_is_an_outage(error: BaseException) -> None:
    assert retries.is_outage(error)


@pytest.mark.parametrize("error", [
    ValueError("bug"), KeyError("field"), DuplicateKeyError("dup"), OperationFailure("bad update", 9),
    ResponseError("WRONGTYPE"), RecordTooLargeError(), _raised_from(ValueError("bug")),
])
def test_anything_else_is_not(error: BaseException) -> None:
    assert not retries.is_outage(error)


@given(st.integers(min_value=1, max_value=10_000))
def test_an_outage_is_never_given_up(failures: int) -> None:
    assert not retries.gives_up(failures, outage=True)


@given(st.integers(min_value=1, max_value=10_000))
def test_other_failures_are_given_up_after_the_attempts(failures: int) -> None:
    assert retries.gives_up(failures, outage=False) == (failures >= retries.ATTEMPTS)


@given(st.integers(min_value=1, max_value=10_000))
def test_the_pause_doubles_from_the_first_up_to_the_longest(failures: int) -> None:
    pause = retries.pause_after(failures)
    assert retries.FIRST_PAUSE_S <= pause <= retries.LONGEST_PAUSE_S
    assert retries.pause_after(failures + 1) == min(retries.LONGEST_PAUSE_S, 2 * pause)


def test_a_dead_letters_detail_names_the_error_within_bounds() -> None:
    assert retries.describe(KeyError("x")) == "KeyError: 'x'"
    assert len(retries.describe(ValueError("y" * 5000))) == 500


def test_failures_are_counted_per_record_in_a_row_and_bounded() -> None:
    counts = retries.FailureCounts(limit=3)
    assert [counts.failed("a"), counts.failed("a"), counts.failed("b")] == [1, 2, 1]
    counts.forget("a")
    assert counts.failed("a") == 1
    for key in ("c", "d", "e"):
        counts.failed(key)
    assert counts.failed("a") == 1  # forgotten: the oldest of more than `limit`
    assert counts.failed("e") == 2
