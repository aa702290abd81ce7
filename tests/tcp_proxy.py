"""A TCP proxy in front of a real server, for tests of what a service answers when that server is slow or away:
`hold` names the client sends to delay (`delay` seconds, while `slow` is set); `unplug()` drops every connection
and refuses new ones until `plug()` (the server itself keeps running: other tests share it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, hold: Callable[[bytes], bool] | None = None,
                 delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.hold = hold
        self.delay = delay
        self.slow = True
        self._port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        return self._port

    async def __aenter__(self) -> TcpProxy:
        await self.plug()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unplug()

    async def plug(self) -> None:
        """Listen (again, on the same port)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def unplug(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        for pipe in (self._pipe(reader, upstream_writer, from_client=True),
                     self._pipe(upstream_reader, writer, from_client=False)):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while chunk := await reader.read(65536):
                if from_client and self.slow and self.hold is not None and self.hold(chunk):
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        writer.close()
