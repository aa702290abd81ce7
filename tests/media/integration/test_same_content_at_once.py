"""Several records of one content stored at the same moment: one blob written, every record stored. The
race this guards against only shows under load in the end-to-end tests, so it is forced here."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Any

from parley_common.clock import FixedClock
from parley_common.settings import InfraSettings
from parley_media.adapters.gridfs_store import GridFSBlobStore
from parley_media.adapters.media_repository import MediaRepository
from parley_media.domain.limits import Direction
from parley_media.handlers.pipeline import MediaPipeline, Origin, inspect
from tests.media.conftest import png


async def test_one_content_arriving_six_times_at_once_is_written_once(mongo: Any,
                                                                       infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("media")]
    now = datetime(2026, 11, 27, tzinfo=UTC)
    repo = MediaRepository(db)
    pipeline = MediaPipeline(repo, GridFSBlobStore(db), publisher=None, clock=FixedClock(now),  # type: ignore[arg-type]
                             retention_days=30)
    image = png(color="blue")
    origins = [Origin(media_id=f"m{i}", tenant_id="acme", channel_id="wa-main", channel_type="whatsapp",
                      direction=Direction.INBOUND, received_at=now, correlation_id=f"c{i}") for i in range(6)]
    for origin in origins:
        await pipeline.open(origin)

    async def store(origin: Origin) -> dict[str, Any]:
        source = io.BytesIO(image)
        return await pipeline.store(origin, source, inspect(source, len(image), "image/png", "whatsapp",
                                                            Direction.INBOUND))

    stored = await asyncio.gather(*(store(origin) for origin in origins))

    assert len({fields["blob_key"] for fields in stored}) == 1
    key = stored[0]["blob_key"]
    assert await db["blobs.files"].count_documents({}) == 2  # the image and its thumbnail
    assert b"".join([chunk async for chunk in GridFSBlobStore(db).read(key)]) == image
    assert await db["media"].count_documents({"state": "stored", "blob_key": key}) == 6
