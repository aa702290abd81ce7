"""The S3 adapter against a real local S3 server (SeaweedFS, started by the s3_endpoint fixture)."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from parley_media.adapters.blobstore import BlobNotFound
from parley_media.adapters.s3_store import S3BlobStore
from tests.media.conftest import S3_ACCESS, S3_SECRET, jpeg_of_size
from tests.media.integration.test_expiry import sweeper
from tests.media.integration.test_serving_and_upload import path_of, upload


async def test_put_read_range_delete_and_refused_credentials(s3_endpoint: str) -> None:
    store = S3BlobStore(s3_endpoint, f"t{os.urandom(4).hex()}", S3_ACCESS, S3_SECRET, create_bucket=True)
    await store.start()
    data = os.urandom(700_000)
    try:
        await store.put("acme/abc/1", io.BytesIO(data), len(data), "application/octet-stream")
        assert b"".join([chunk async for chunk in store.read("acme/abc/1")]) == data
        assert b"".join([chunk async for chunk in store.read("acme/abc/1", 1000, 1999)]) == data[1000:2000]
        await store.delete("acme/abc/1")
        await store.delete("acme/abc/1")  # deleting twice is fine (resumed sweeps)
        with pytest.raises(BlobNotFound):
            [chunk async for chunk in store.read("acme/abc/1")]
    finally:
        await store.close()
    intruder = S3BlobStore(s3_endpoint, "parley-media", S3_ACCESS, "wrong-secret")
    await intruder.start()
    try:
        with pytest.raises(ClientError):
            await intruder.put("x", io.BytesIO(b"x"), 1, "text/plain")
    finally:
        await intruder.close()


async def test_the_service_on_s3_uploads_serves_ranges_and_expires(media_app: Any, s3_endpoint: str) -> None:
    image = jpeg_of_size(200_000)
    settings = {"storage": "s3", "s3_endpoint_url": s3_endpoint, "s3_bucket": f"t{os.urandom(4).hex()}",
                "s3_access_key": S3_ACCESS, "s3_secret_key": SecretStr(S3_SECRET), "s3_create_bucket": True}
    async with media_app(**settings) as media:
        media_id = (await upload(media, image, "p.jpg", "image/jpeg")).json()["id"]
        meta = (await media.client.get(f"/v1/media/{media_id}", headers=media.auth())).json()
        whole = await media.client.get(path_of(meta["download_url"]))
        ranged = await media.client.get(path_of(meta["download_url"]), headers={"Range": "bytes=5-14"})
        thumb = await media.client.get(path_of(meta["thumbnail_url"]))
        media.clock.advance(timedelta(days=31))
        assert await sweeper(media).sweep() == 1
        blobs = media.app.state.pipeline.blobs
        record = await media.app.state.pipeline.repo.get("acme", media_id)
        with pytest.raises(BlobNotFound):
            [chunk async for chunk in blobs.read(record["blob_key"])]
    assert whole.content == image and ranged.status_code == 206 and ranged.content == image[5:15]
    assert thumb.status_code == 200
