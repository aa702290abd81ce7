"""Blobs in MongoDB GridFS: the embedded default (no extra server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from gridfs.asynchronous.grid_file import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from parley_media.adapters.blobstore import CHUNK, BlobNotFound

CHUNK_SIZE = 255 * 1024


class GridFSBlobStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], bucket: str = "blobs") -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=bucket, chunk_size_bytes=CHUNK_SIZE)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put(self, key: str, source: BinaryIO, size: int, content_type: str) -> None:
        try:
            await self._upload(key, source, content_type)
        except PyMongoError:
            if await self._holds_whole(key, size):
                return  # another replica wrote this content first (keys name content, so the bytes are ours)
            # A crashed earlier attempt left chunks (or a whole file) under this id: clear it and write again.
            await self.delete(key)
            await self._upload(key, source, content_type)

    async def _holds_whole(self, key: str, size: int) -> bool:
        async for stored in self._bucket.find({"_id": key, "length": size}, limit=1):
            return stored is not None
        return False

    async def _upload(self, key: str, source: BinaryIO, content_type: str) -> None:
        source.seek(0)
        await self._bucket.upload_from_stream_with_id(key, key, source, metadata={"content_type": content_type})

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            stream = await self._bucket.open_download_stream(key)
        except NoFile:
            raise BlobNotFound(key) from None
        last = stream.length - 1 if end is None else min(end, stream.length - 1)
        if start:
            await stream.seek(start)
        remaining = last - start + 1
        while remaining > 0:
            chunk = await stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk

    async def delete(self, key: str) -> None:
        try:
            await self._bucket.delete(key)
        except NoFile:  # already gone; GridFS still removed any stray chunks of it
            return
