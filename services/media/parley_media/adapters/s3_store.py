"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, SeaweedFS) through aioboto3."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, BinaryIO

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from parley_media.adapters.blobstore import CHUNK, BlobNotFound

_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3BlobStore:
    def __init__(self, endpoint_url: str | None, bucket: str, access_key: str, secret_key: str,
                 region: str = "us-east-1", create_bucket: bool = False) -> None:
        self._session = aioboto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                         region_name=region)
        self._endpoint_url = endpoint_url
        self._bucket = bucket
        self._create_bucket = create_bucket
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def start(self) -> None:
        config = Config(s3={"addressing_style": "path"}, max_pool_connections=50,
                        retries={"max_attempts": 3, "mode": "standard"})
        self._client = await self._stack.enter_async_context(
            self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
        )
        if self._create_bucket:
            with contextlib.suppress(ClientError):  # already exists (ours)
                await self._client.create_bucket(Bucket=self._bucket)

    async def close(self) -> None:
        await self._stack.aclose()

    async def put(self, key: str, source: BinaryIO, size: int, content_type: str) -> None:
        source.seek(0)
        await self._client.upload_fileobj(source, self._bucket, key, ExtraArgs={"ContentType": content_type})

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        options: dict[str, Any] = {}
        if start or end is not None:
            options["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = await self._client.get_object(Bucket=self._bucket, Key=key, **options)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise BlobNotFound(key) from None
            raise
        body = response["Body"]
        try:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self._bucket, Key=key)  # S3 deletes are idempotent
