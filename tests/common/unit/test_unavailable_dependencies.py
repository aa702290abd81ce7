"""Which failures of a store or the broker are a passing state (503 with Retry-After) and which are not (a 500:
a bug, or an error every retry would meet again)."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RequestTimedOutError,
)
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)
from redis.exceptions import BusyLoadingError, MaxConnectionsError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from parley_common.errors import unavailable_dependency


@pytest.mark.parametrize(("failure", "dependency"), [
    (ServerSelectionTimeoutError("no server"), "database"),
    (NetworkTimeout("timed out"), "database"),
    (AutoReconnect("connection reset"), "database"),
    (WaitQueueTimeoutError("pool exhausted"), "database"),
    (ExecutionTimeout("operation exceeded time limit", 50), "database"),
    (RedisConnectionError("Connection refused"), "cache"),
    (RedisTimeoutError("Timeout reading from socket"), "cache"),
    (BusyLoadingError("loading the dataset"), "cache"),
    (MaxConnectionsError("Too many connections"), "cache"),  # redis-py's pool (100 by default) ran dry
    (KafkaTimeoutError(), "broker"),
    (KafkaConnectionError("no broker"), "broker"),
    (RequestTimedOutError(), "broker"),
    (NotLeaderForPartitionError(), "broker"),
    (DuplicateKeyError("E11000"), None),
    (OperationFailure("unknown operator: $bad", 2), None),
    (ResponseError("WRONGTYPE"), None),
    (MessageSizeTooLargeError(), None),
    (ValueError("a bug"), None),
])
def test_passing_failures_of_a_dependency_are_told_from_the_rest(failure: Exception, dependency: str | None) -> None:
    assert unavailable_dependency(failure) == dependency
