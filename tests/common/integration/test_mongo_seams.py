"""PyMongo's connection with its reply awaited directly (parley_common.mongo_seams): commands answer, a reply that
does not come fails at the operation's deadline, and a pool cleared with `interrupt_connections` fails a command
waiting for its reply at once — each through a proxy in front of the database that can hold `find`s back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pymongo
import pytest
from pymongo.asynchronous import pool
from pymongo.errors import AutoReconnect, PyMongoError
from tcp_proxy import TcpProxy

from parley_common import mongo_seams
from parley_common.mongo import mongo_client
from parley_common.settings import InfraSettings


@pytest.fixture
async def proxied(infra_settings: InfraSettings, mongo: Any) -> AsyncIterator[tuple[TcpProxy, Any]]:
    """A collection reached through a proxy that, once `slow` is set, holds each `find` back for a minute."""
    address = urlsplit(infra_settings.mongo_uri)
    async with TcpProxy(address.hostname or "127.0.0.1", address.port or 27017,
                        hold=lambda chunk: b"find\x00" in chunk, delay=60.0) as proxy:
        proxy.slow = False
        client = mongo_client(f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true&retryWrites=false"
                              "&retryReads=false", "parley-tests")
        yield proxy, client[f"seams_{infra_settings.namespace}"]["docs"]
        await client.close()
    await mongo.drop_database(f"seams_{infra_settings.namespace}")


async def test_commands_answer_through_the_patched_connection(proxied: tuple[TcpProxy, Any]) -> None:
    _, docs = proxied
    await docs.insert_one({"_id": "a", "n": 1})
    assert await docs.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    assert getattr(pool, "async_receive_message") is mongo_seams._receive_message  # noqa: B009


async def test_an_answer_held_back_fails_at_the_operations_deadline(proxied: tuple[TcpProxy, Any]) -> None:
    proxy, docs = proxied
    await docs.insert_one({"_id": "a"})
    proxy.slow = True
    started = time.monotonic()
    with pytest.raises(PyMongoError) as failure, pymongo.timeout(0.5):
        await docs.find_one({"_id": "a"})
    assert failure.value.timeout
    assert 0.4 < time.monotonic() - started < 3.0


async def test_a_pool_cleared_with_interruption_fails_the_command_waiting_for_its_answer(
        proxied: tuple[TcpProxy, Any]) -> None:
    proxy, docs = proxied
    await docs.insert_one({"_id": "a"})
    proxy.slow = True
    waiting = asyncio.create_task(docs.find_one({"_id": "a"}))  # no deadline: it waits for the held answer
    await asyncio.sleep(0.2)
    assert not waiting.done()
    server = await docs.database.client._topology.select_server(pymongo.ReadPreference.PRIMARY, "test")
    await server.pool.reset(interrupt_connections=True)
    with pytest.raises(AutoReconnect, match="operation cancelled"):
        await asyncio.wait_for(waiting, 2.0)


def test_the_seam_refuses_another_pymongo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pymongo, "version", "9.9.9")
    with pytest.raises(RuntimeError, match=r"9\.9\.9"):
        mongo_seams.replies_awaited_directly()
