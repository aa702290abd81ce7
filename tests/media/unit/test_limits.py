"""Per-channel size and type limits (pure policy)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley_common.channel_catalogue import MB
from parley_common.events.common import ChannelType
from parley_media.domain.limits import DANGEROUS_TYPES, Direction, check, max_size

CHANNELS = sorted(ChannelType)


def test_whatsapp_images_are_capped_at_five_megabytes_outbound() -> None:
    assert check("whatsapp", Direction.OUTBOUND, "image/png", 5 * MB).ok
    verdict = check("whatsapp", Direction.OUTBOUND, "image/png", 5 * MB + 1)
    assert (verdict.ok, verdict.reason) == (False, "too_large")


def test_whatsapp_refuses_types_it_cannot_send() -> None:
    verdict = check("whatsapp", Direction.OUTBOUND, "application/zip", 10)
    assert (verdict.ok, verdict.reason) == (False, "type_not_allowed")


def test_viber_pictures_are_small_but_files_may_be_large() -> None:
    assert not check("viber", Direction.OUTBOUND, "image/jpeg", 2 * MB).ok
    assert check("viber", Direction.OUTBOUND, "application/pdf", 40 * MB).ok


def test_viber_and_instagram_limits_are_the_documented_ones() -> None:
    assert check("viber", Direction.OUTBOUND, "image/gif", MB).ok
    assert check("viber", Direction.OUTBOUND, "video/mp4", 26 * MB).ok
    assert check("viber", Direction.OUTBOUND, "video/mp4", 26 * MB + 1).reason == "too_large"
    assert check("instagram", Direction.OUTBOUND, "image/png", 8 * MB + 1).reason == "too_large"
    assert check("instagram", Direction.OUTBOUND, "application/pdf", 20 * MB).ok


def test_empty_files_are_refused() -> None:
    assert check("telegram", Direction.INBOUND, "image/png", 0).reason == "empty"


@given(st.sampled_from(CHANNELS), st.sampled_from(list(Direction)), st.sampled_from(sorted(DANGEROUS_TYPES)),
       st.integers(min_value=1, max_value=10 * MB))
def test_dangerous_types_are_refused_everywhere(channel: str, direction: Direction, mime: str, size: int) -> None:
    assert check(channel, direction, mime, size).reason == "dangerous_type"


@given(st.sampled_from(CHANNELS), st.sampled_from(list(Direction)), st.integers(min_value=1, max_value=300 * MB))
def test_nothing_above_the_channel_ceiling_is_accepted(channel: str, direction: Direction, size: int) -> None:
    verdict = check(channel, direction, "application/pdf", size)
    if size > max_size(channel, direction):
        assert not verdict.ok


@given(st.sampled_from(CHANNELS), st.integers(min_value=1, max_value=20 * MB))
def test_inbound_keeps_any_safe_type_within_the_ceiling(channel: str, size: int) -> None:
    assert check(channel, Direction.INBOUND, "application/octet-stream", size).ok
