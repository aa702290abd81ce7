"""Serving (metadata, signed links, Range, thumbnails), uploads, and tenant isolation over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from tests.media.conftest import MediaHarness, jpeg_of_size, png


async def upload(media: MediaHarness, data: bytes, name: str = "photo.png", mime: str = "image/png",
                 channel: str = "wa-main", tenant: str = "acme") -> Any:
    return await media.client.post(f"/v1/media?channel_id={channel}", files={"file": (name, data, mime)},
                                   headers=media.auth(tenant))


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_upload_then_metadata_signed_download_range_and_thumbnail(media_app: Any) -> None:
    image = jpeg_of_size(200_000)
    async with media_app() as media:
        created = await upload(media, image, "photo.jpg", "image/jpeg")
        assert created.status_code == 201, created.text
        media_id = created.json()["id"]
        meta = (await media.client.get(f"/v1/media/{media_id}", headers=media.auth())).json()
        whole = await media.client.get(path_of(meta["download_url"]))
        ranged = await media.client.get(path_of(meta["download_url"]), headers={"Range": "bytes=100-199"})
        suffix = await media.client.get(path_of(meta["download_url"]), headers={"Range": "bytes=-10"})
        beyond = await media.client.get(path_of(meta["download_url"]), headers={"Range": f"bytes={len(image)}-"})
        thumb = await media.client.get(path_of(meta["thumbnail_url"]))
        asyncapi = (await media.client.get("/asyncapi.json")).text

    assert "parley.media.retries.v1" in asyncapi and "parley.inbound.attachments.v1" in asyncapi
    assert (meta["mime_type"], meta["size_bytes"], meta["state"]) == ("image/jpeg", len(image), "stored")
    assert meta["file_name"] == "photo.jpg" and meta["has_thumbnail"]
    assert whole.status_code == 200 and whole.content == image
    assert whole.headers["content-type"] == "image/jpeg" and whole.headers["accept-ranges"] == "bytes"
    assert ranged.status_code == 206 and ranged.content == image[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(image)}"
    assert suffix.content == image[-10:]
    assert beyond.status_code == 416
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff" and len(thumb.content) < len(image)


async def test_signed_links_refuse_tampering_expiry_and_other_tenants(media_app: Any) -> None:
    async with media_app() as media:
        media_id = (await upload(media, png())).json()["id"]
        url = path_of((await media.client.get(f"/v1/media/{media_id}", headers=media.auth())).json()["download_url"])
        query = parse_qs(urlsplit(url).query)
        forged_sig = url.replace(query["signature"][0], "0" * 64)
        other_tenant = url.replace("tenant=acme", "tenant=globex")
        longer = url.replace(f"expires={query['expires'][0]}", f"expires={int(query['expires'][0]) + 3600}")
        answers = [await media.client.get(bad) for bad in (forged_sig, other_tenant, longer)]
        fresh = await media.client.get(url)
        media.clock.advance(timedelta(seconds=media.settings.link_ttl_seconds + 1))
        expired = await media.client.get(url)
        as_globex = await media.client.get(f"/v1/media/{media_id}", headers=media.auth("globex"))
        no_token = await media.client.get(f"/v1/media/{media_id}")

    assert fresh.status_code == 200
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(403, "invalid_signature")] * 3
    assert (expired.status_code, expired.json()["error"]["code"]) == (403, "signature_expired")
    assert (as_globex.status_code, as_globex.json()["error"]["code"]) == (404, "media_not_found")
    assert no_token.status_code == 401


async def test_bad_uploads_get_a_clear_4xx_and_store_nothing(media_app: Any, mongo: Any) -> None:
    async with media_app() as media:
        exe = await upload(media, b"MZ\x90\x00" + b"\x00" * 100, "cat.png", "image/png")
        empty = await upload(media, b"", "empty.png")
        too_big_viber = await upload(media, jpeg_of_size(1_300_000), "big.jpg", "image/jpeg", channel="vb-bot")
        zip_to_whatsapp = await upload(media, b"PK\x03\x04" + b"\x00" * 100, "a.zip", "application/zip")
        foreign_channel = await upload(media, png(), channel="wa-other")
        unknown = await media.client.get("/v1/media/u_nope", headers=media.auth())
        over_header = await media.client.post("/v1/media?channel_id=vb-bot", headers={
            **media.auth(), "Content-Length": str(60 * 1024 * 1024), "Content-Type": "multipart/form-data; boundary=x"},
            content=b"--x--")
        db = mongo[media.settings.infra.database_name("media")]
        stored = await db["media"].count_documents({}) + await db["blobs.files"].count_documents({})

    assert (exe.status_code, exe.json()["error"]["code"]) == (422, "dangerous_type")
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "empty")
    assert (too_big_viber.status_code, too_big_viber.json()["error"]["code"]) == (413, "too_large")
    assert (zip_to_whatsapp.status_code, zip_to_whatsapp.json()["error"]["code"]) == (422, "type_not_allowed")
    assert (foreign_channel.status_code, foreign_channel.json()["error"]["code"]) == (404, "unknown_channel")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "media_not_found")
    assert over_header.status_code == 413
    assert stored == 0


async def test_same_bytes_from_two_tenants_are_two_blobs(media_app: Any, mongo: Any) -> None:
    image = png(color="purple")
    async with media_app() as media:
        ours = (await upload(media, image)).json()["id"]
        theirs = (await upload(media, image, channel="wa-other", tenant="globex")).json()["id"]
        again = (await upload(media, image)).json()["id"]
        db = mongo[media.settings.infra.database_name("media")]
        keys = {doc["_id"]: doc["blob_key"] async for doc in db["media"].find({}, {"blob_key": 1})}
        cross = await media.client.get(f"/v1/media/{theirs}", headers=media.auth("acme"))
    assert keys[ours] == keys[again] and keys[ours] != keys[theirs]
    assert keys[theirs].startswith("globex/")
    assert cross.status_code == 404


async def test_a_rotated_link_key_keeps_links_in_flight_working_until_it_is_retired(media_app: Any) -> None:
    old, new = "old-link-key-of-at-least-32-characters", "new-link-key-of-at-least-32-characters"
    async with media_app(signing_secret=SecretStr(old)) as media:
        media_id = (await upload(media, png())).json()["id"]
        signed_by_old = path_of((await media.client.get(f"/v1/media/{media_id}",
                                                        headers=media.auth())).json()["download_url"])
    async with media_app(signing_secret=SecretStr(new), signing_previous_secrets=[SecretStr(old)]) as media:
        during = await media.client.get(signed_by_old)
        signed_by_new = path_of((await media.client.get(f"/v1/media/{media_id}",
                                                        headers=media.auth())).json()["download_url"])
        fresh = await media.client.get(signed_by_new)
    async with media_app(signing_secret=SecretStr(new)) as media:
        retired = await media.client.get(signed_by_old)
        still = await media.client.get(signed_by_new)

    assert during.status_code == 200 and fresh.status_code == 200 and still.status_code == 200
    assert signed_by_new != signed_by_old
    assert (retired.status_code, retired.json()["error"]["code"]) == (403, "invalid_signature")
