"""Signed download links: tenant-scoped, expiring, tamper-evident."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley_media.domain.signing import SignatureProblem, SignedLink, Variant, sign, verify

SECRET = b"s3cret"
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-|", min_size=1, max_size=20)


@given(ids, ids, st.sampled_from(list(Variant)), st.integers(min_value=1, max_value=2**40))
def test_a_fresh_link_verifies(tenant: str, media: str, variant: Variant, expires: int) -> None:
    assert verify((SECRET,), sign(SECRET, tenant, media, variant, expires), now=expires - 1) is None


@given(ids, ids, st.integers(min_value=1, max_value=2**40), st.integers(min_value=0, max_value=10**6))
def test_an_expired_link_is_refused(tenant: str, media: str, expires: int, late: int) -> None:
    link = sign(SECRET, tenant, media, Variant.ORIGINAL, expires)
    assert verify((SECRET,), link, now=expires + late) is SignatureProblem.EXPIRED


@given(ids, ids, ids)
def test_a_link_for_one_tenant_does_not_open_another(tenant: str, other: str, media: str) -> None:
    link = sign(SECRET, tenant, media, Variant.ORIGINAL, 100)
    moved = SignedLink(other, media, link.variant, link.expires, link.signature)
    assert verify((SECRET,), moved, now=0) is (None if other == tenant else SignatureProblem.INVALID)


def test_changing_expiry_variant_or_secret_breaks_the_signature() -> None:
    link = sign(SECRET, "acme", "m1", Variant.THUMBNAIL, 100)
    assert verify((SECRET,), SignedLink("acme", "m1", Variant.THUMBNAIL, 10_000, link.signature), 0) \
        is SignatureProblem.INVALID
    assert verify((SECRET,), SignedLink("acme", "m1", Variant.ORIGINAL, 100, link.signature), 0) \
        is SignatureProblem.INVALID
    assert verify((b"other",), link, 0) is SignatureProblem.INVALID


def test_a_forged_expired_link_says_invalid_not_expired() -> None:
    link = SignedLink("acme", "m1", Variant.ORIGINAL, 1, "0" * 64)
    assert verify((SECRET,), link, now=50) is SignatureProblem.INVALID


def test_during_a_rotation_links_of_the_current_and_of_a_previous_key_verify() -> None:
    old, new = b"old-link-key", b"new-link-key"
    before = sign(old, "acme", "m1", Variant.ORIGINAL, 100)
    after = sign(new, "acme", "m1", Variant.ORIGINAL, 100)
    assert verify((new, old), before, 0) is None and verify((new, old), after, 0) is None
    assert verify((new,), before, 0) is SignatureProblem.INVALID  # the old key retired: its links stop working
    assert verify((new, old), sign(b"never-listed", "acme", "m1", Variant.ORIGINAL, 100), 0) \
        is SignatureProblem.INVALID
