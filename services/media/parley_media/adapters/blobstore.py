"""The blob storage port: content-addressed objects written once, read whole or by range, deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO, Protocol

CHUNK = 256 * 1024


class BlobNotFound(Exception):
    pass


class BlobStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, key: str, source: BinaryIO, size: int, content_type: str) -> None:
        """Store `size` bytes read from `source` (rewound) under `key`; rewriting a key is harmless."""

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes from `start` to `end` inclusive (the end of the object when None); an async
        generator, raising BlobNotFound on its first step when the key is missing."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error (deletes are retried after crashes)."""
