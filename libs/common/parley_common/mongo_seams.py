"""The one patch of PyMongo's internals, with its reason; tests/common/integration/test_mongo_seams.py fails when an
upgrade moves its seam (PyMongo is pinned in constraints.txt and libs/common/pyproject.toml).

`replies_awaited_directly` (PyMongo's async connection: `pool.async_sendall`, `pool.async_receive_message`,
`_CancellationContext.cancel`): PyMongo 4.20 waits for every reply in `asyncio.wait` beside a second task that
polls the connection's cancellation every 0.5 s, then cancels that task and waits for it to finish, and writes every
command under `asyncio.wait_for`, a task of its own on Python 3.11 — about eight turns of the event loop and three
tasks per command where one read needs one. Every database command of every service paid it (about a fifth of
the driver's CPU per command, measured: docs/benchmarks.md, "Database commands without the driver's extra tasks").
Patched, the write is made at once (the protocol's write never waits: the transport buffers), the reply is awaited
under `asyncio.timeout` with the same deadline (the operation's `pymongo.timeout`, else the socket timeout), and a
pool cleared with `interrupt_connections` (the monitor found the server unresponsive) aborts a connection waiting for
its reply at once, with the same `_OperationCancelled` the poller raised within 0.5 s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pymongo
from pymongo import _csot
from pymongo.asynchronous import pool
from pymongo.common import MAX_MESSAGE_SIZE
from pymongo.errors import ProtocolError, _OperationCancelled
from pymongo.message import _UNPACK_REPLY, _OpMsg
from pymongo.network_layer import PyMongoProtocol
from pymongo.pool_shared import _CancellationContext

SEAM_VERSION = "4.20.1"


def replies_awaited_directly() -> None:
    """Applied once per process (idempotent), before the first command: `parley_common.mongo.mongo_client`."""
    if pymongo.version != SEAM_VERSION:
        raise RuntimeError(f"replies_awaited_directly patches PyMongo {SEAM_VERSION}, not {pymongo.version}")
    if getattr(pool, "async_receive_message", None) is _receive_message:
        return
    setattr(pool, "async_sendall", _send_all)  # noqa: B010 - the names pool.py calls, not exported
    setattr(pool, "async_receive_message", _receive_message)  # noqa: B010
    _CancellationContext.cancel = _cancel_and_interrupt  # type: ignore[method-assign]


async def _send_all(conn: PyMongoProtocol, buf: bytes) -> None:
    await conn.write(buf)


async def _receive_message(conn: Any, request_id: int | None, max_message_size: int = MAX_MESSAGE_SIZE) -> _OpMsg:
    """network_layer.async_receive_message's deadline and errors, the reply awaited in this task."""
    context = conn.cancel_context
    if context.cancelled:
        raise _OperationCancelled("operation cancelled")
    timeout = conn.conn.gettimeout
    if _csot.get_timeout():
        deadline = _csot.get_deadline()
    elif timeout:
        deadline = time.monotonic() + timeout
    else:
        deadline = None
    protocol = conn.conn.get_conn
    context.parley_waiting = protocol
    try:
        async with asyncio.timeout(None if deadline is None else max(deadline - time.monotonic(), 0)):
            data, op_code = await protocol.read(request_id, max_message_size)
    except TimeoutError:
        raise TimeoutError("timed out") from None
    finally:
        context.parley_waiting = None
    try:
        unpack_reply = _UNPACK_REPLY[op_code]
    except KeyError:
        raise ProtocolError(f"Got opcode {op_code!r} but expected {_UNPACK_REPLY.keys()!r}") from None
    return unpack_reply(data)


def _cancel_and_interrupt(self: _CancellationContext) -> None:
    """Cancelled, and the reply this connection is waiting for (if any) fails now: PyMongo's poller noticed within
    0.5 s. The connection is aborted as the driver then closes it anyway."""
    self._cancelled = True
    waiting = getattr(self, "parley_waiting", None)
    if waiting is not None:
        waiting.close(_OperationCancelled("operation cancelled"))
