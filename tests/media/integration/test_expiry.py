"""Expiry after the retention (30-day default and a short setting), legal hold, tombstones and 410,
several sweepers at once, and recovery after a crash mid-sweep and mid-upload."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from parley_common.topics import INBOUND_MESSAGES, MEDIA_EVENTS
from parley_media.adapters.gridfs_store import GridFSBlobStore
from parley_media.handlers.sweeper import Sweeper
from tests.media.conftest import MediaHarness, media_part, message, png, read_topic
from tests.media.fake_provider import FakeProvider
from tests.media.integration.test_inbound_media import publish
from tests.media.integration.test_serving_and_upload import upload


class Crash(Exception):
    """Stands in for the process dying at this point."""


class CrashingBlobs(GridFSBlobStore):
    def __init__(self, db: Any, crash_on: str) -> None:
        super().__init__(db)
        self.crash_on = crash_on

    async def put(self, key: str, source: Any, size: int, content_type: str) -> None:
        if self.crash_on == "put":
            raise Crash
        await super().put(key, source, size, content_type)

    async def delete(self, key: str) -> None:
        if self.crash_on == "delete":
            raise Crash
        await super().delete(key)


def sweeper(media: MediaHarness, blobs: Any = None, owner: str | None = None) -> Sweeper:
    pipeline = media.app.state.pipeline
    if blobs is not None:
        pipeline = type(pipeline)(pipeline.repo, blobs, pipeline.publisher, pipeline.clock, pipeline.retention_days)
    return Sweeper(pipeline, media.settings.sweep_lease_seconds, media.settings.pending_timeout_seconds, owner)


async def blob_count(media: MediaHarness, mongo: Any) -> int:
    return int(await mongo[media.settings.infra.database_name("media")]["blobs.files"].count_documents({}))


async def test_thirty_days_by_default_then_gone_with_a_tombstone(media_app: Any, provider: FakeProvider,
                                                                 mongo: Any) -> None:
    provider.files["pic"] = png(color="yellow")
    async with media_app() as media:
        assert media.settings.retention_days == 30
        await publish(media.settings.infra, (message((media_part("provider_id", "pic", "p.0", file_name="p.png"),)),
                                             INBOUND_MESSAGES))
        [stored] = await read_topic(media.settings.infra, MEDIA_EVENTS, 1)
        held = (await upload(media, png(color="black"))).json()["id"]
        hold = await media.client.put(f"/v1/media/{held}/legal-hold", json={"hold": True},
                                      headers=media.auth(roles=("manager",)))
        media.clock.advance(timedelta(days=29, hours=23))
        assert await sweeper(media).sweep() == 0
        media.clock.advance(timedelta(hours=2))
        assert await sweeper(media).sweep() == 1  # the held one is skipped
        gone = await media.client.get(f"/v1/media/{stored.media_id}", headers=media.auth())
        still = await media.client.get(f"/v1/media/{held}", headers=media.auth())
        expired = await read_topic(media.settings.infra, MEDIA_EVENTS, 1, where=lambda e: e.type.endswith("expired"))
        remaining = await blob_count(media, mongo)
    assert hold.status_code == 200
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "media_expired")
    assert gone.json()["error"]["details"]["file_name"] == "p.png"
    assert gone.json()["error"]["details"]["mime_type"] == "image/png"
    assert still.status_code == 200 and still.json()["legal_hold"] is True
    assert expired[0].media_id == stored.media_id and expired[0].size_bytes == stored.size_bytes
    assert remaining == 2  # the held image and its thumbnail; the expired blob and thumbnail are deleted


async def test_a_short_retention_setting_expires_sooner(media_app: Any) -> None:
    async with media_app(retention_days=1 / 24) as media:
        media_id = (await upload(media, png(color="white"))).json()["id"]
        media.clock.advance(timedelta(minutes=59))
        assert await sweeper(media).sweep() == 0
        media.clock.advance(timedelta(minutes=2))
        assert await sweeper(media).sweep() == 1
        answer = await media.client.get(f"/v1/media/{media_id}", headers=media.auth())
    assert answer.status_code == 410


async def test_several_sweepers_expire_each_item_exactly_once(media_app: Any, mongo: Any) -> None:
    async with media_app() as media:
        for index in range(12):
            assert (await upload(media, png(color=(index * 20, 0, 0)))).status_code == 201  # type: ignore[arg-type]
        media.clock.advance(timedelta(days=31))
        counts = await asyncio.gather(*(sweeper(media, owner=f"replica-{n}").sweep() for n in range(3)))
        left = await blob_count(media, mongo)
        states = [doc["state"] async for doc in mongo[media.settings.infra.database_name("media")]["media"].find()]
    assert sum(counts) == 12
    assert states == ["expired"] * 12 and left == 0


async def test_a_sweeper_that_dies_midway_is_resumed_by_another(media_app: Any, mongo: Any) -> None:
    async with media_app(sweep_lease_seconds=60) as media:
        media_id = (await upload(media, png(color="orange"))).json()["id"]
        media.clock.advance(timedelta(days=31))
        db = mongo[media.settings.infra.database_name("media")]
        with pytest.raises(Crash):
            await sweeper(media, CrashingBlobs(db, "delete"), owner="dies").sweep()
        half = await db["media"].find_one({"_id": media_id})
        during = await media.client.get(f"/v1/media/{media_id}", headers=media.auth())
        assert await sweeper(media, owner="second").sweep() == 0  # the lease still holds
        media.clock.advance(timedelta(seconds=61))
        assert await sweeper(media, owner="second").sweep() == 1
        done = await db["media"].find_one({"_id": media_id})
        left = await blob_count(media, mongo)
    assert half["state"] == "expiring" and during.status_code == 410
    assert done["state"] == "expired" and left == 0


async def test_an_upload_that_dies_midway_leaves_nothing_half_stored(media_app: Any, mongo: Any) -> None:
    async with media_app(pending_timeout_seconds=600) as media:
        db = mongo[media.settings.infra.database_name("media")]
        media.app.state.pipeline.blobs = CrashingBlobs(db, "put")
        with pytest.raises(Crash):
            await upload(media, png(color="pink"))
        [pending] = [doc async for doc in db["media"].find()]
        media.app.state.pipeline.blobs = GridFSBlobStore(db)
        media.clock.advance(timedelta(seconds=601))
        assert await sweeper(media).sweep() == 1
        after = await db["media"].find_one({"_id": pending["_id"]})
        blob_docs = await db["blobs"].count_documents({})
        answer = await media.client.get(f"/v1/media/{pending['_id']}", headers=media.auth())
    assert pending["state"] == "pending"
    assert (after["state"], after["failure_reason"]) == ("failed", "abandoned")
    assert blob_docs == 0 and await blob_count(media, mongo) == 0
    assert answer.json()["state"] == "failed"


async def test_the_service_runs_its_sweeper_periodically(media_app: Any) -> None:
    async with media_app(sweeper_enabled=True, sweep_interval_seconds=0.1) as media:
        media_id = (await upload(media, png(color="gray"))).json()["id"]
        media.clock.advance(timedelta(days=30, seconds=1))
        record = await media.wait_state(media_id, {"expired"})
    assert abs(record["expired_at"] - media.clock.now()) < timedelta(milliseconds=1)  # BSON keeps milliseconds
    assert "lease_owner" not in record
