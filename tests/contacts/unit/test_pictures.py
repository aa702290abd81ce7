"""Which pictures contacts fetches (the platform's, never an agent's URL) and what it takes for one."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from parley_contacts.domain.edits import apply_patch
from parley_contacts.domain.pictures import fetchable_picture, from_platform, image_type

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def test_image_types_by_their_first_bytes() -> None:
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert image_type(b"GIF89a...") == image_type(b"GIF87a...") == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    for other in (b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"<html>", b"RIFF\x00\x00\x00\x00WAVE", b""):
        assert image_type(other) is None


@given(st.binary(max_size=16))
def test_anything_else_is_not_an_image(head: bytes) -> None:
    known = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a")
    if not head.startswith(known) and not (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        assert image_type(head) is None


def test_only_a_platform_picture_is_fetched_and_an_agents_edit_marks_its_own() -> None:
    viber = {"_id": "k1", "avatar_url": "https://media-direct.cdn.viber.com/a.jpg"}  # from the webhook: no mark
    meta = {"_id": "k2", "avatar_url": "https://scontent.xx.fbcdn.net/p.jpg", "avatar_from_platform": True,
            "last_activity_at": NOW}
    assert fetchable_picture(viber) == viber["avatar_url"] and fetchable_picture(meta) == meta["avatar_url"]
    assert fetchable_picture({"_id": "k3", "avatar_url": None}) is None
    edited, changed = apply_patch(meta, {"avatar_url": "http://10.0.0.5/admin"}, NOW)
    assert changed == {"avatar_url": "http://10.0.0.5/admin"}  # the mark is not announced
    assert not from_platform(edited) and fetchable_picture(edited) is None
    unchanged, _ = apply_patch(meta, {"display_name": "Ana"}, NOW)
    assert from_platform(unchanged)
