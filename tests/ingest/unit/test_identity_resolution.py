"""Which key a claim gets from what the store holds (domain/identities.py `resolve`, `settled_key`): the oldest
key wins, a stored identifier is never moved to a younger key, and what is recorded once needs no second write."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from parley_ingest.domain.identities import (
    Scoped,
    ScopedClaim,
    claim,
    key_of,
    rank,
    resolve,
    settled_key,
)

NOW = 1_795_939_200_000
IDENTIFIERS = [f"{kind}:{n}" for kind in ("bsuid", "wa") for n in range(3)]


def scoped(identifier: str) -> Scoped:
    return "acme", "wa-main", identifier


claims_strategy = st.lists(st.builds(
    lambda ids, preferred: ScopedClaim("acme", "wa-main", claim(preferred, *ids)),
    st.lists(st.sampled_from(IDENTIFIERS), min_size=1, max_size=3), st.sampled_from(["k1", "k2", "k3"])),
    min_size=1, max_size=4)
stored_strategy = st.dictionaries(st.sampled_from(IDENTIFIERS).map(scoped),
                                  st.builds(rank, st.integers(0, NOW - 1), st.sampled_from(["old1", "old2"])))


def test_a_customer_nobody_knew_gets_the_preferred_key_born_now() -> None:
    resolution = resolve([ScopedClaim("acme", "wa-main", claim("GB.1", "bsuid:GB.1", "wa:44"))], {}, NOW)
    assert resolution.keys == ["GB.1"]
    assert resolution.new == {scoped("bsuid:GB.1"): rank(NOW, "GB.1"), scoped("wa:44"): rank(NOW, "GB.1")}
    assert resolution.lowered == {}


def test_a_claim_linking_two_keys_joins_the_younger_to_the_older() -> None:
    stored = {scoped("wa:44"): rank(5, "44"), scoped("bsuid:GB.1"): rank(9, "GB.1")}
    resolution = resolve([ScopedClaim("acme", "wa-main", claim("GB.1", "bsuid:GB.1", "wa:44", "bsuid:GB.2"))],
                         stored, NOW)
    assert resolution.keys == ["44"]
    assert resolution.lowered == {scoped("bsuid:GB.1"): rank(5, "44")}
    assert resolution.new == {scoped("bsuid:GB.2"): rank(5, "44")}


def test_a_later_claim_of_the_same_webhook_uses_what_an_earlier_one_gave() -> None:
    first = ScopedClaim("acme", "wa-main", claim("GB.1", "bsuid:GB.1", "wa:44"))
    second = ScopedClaim("acme", "wa-main", claim("44", "wa:44"))
    assert resolve([first, second], {}, NOW).keys == ["GB.1", "GB.1"]


def test_what_the_cache_remembers_and_the_store_lost_is_recorded_again_not_reinvented() -> None:
    """A store restored from a backup older than the customer: the cache's rank is kept and written back."""
    remembered = {scoped("wa:44"): rank(7, "GB.1")}
    resolution = resolve([ScopedClaim("acme", "wa-main", claim("GB.2", "wa:44", "bsuid:GB.2"))], {}, NOW, remembered)
    assert resolution.keys == ["GB.1"]
    assert resolution.new == {scoped("wa:44"): rank(7, "GB.1"), scoped("bsuid:GB.2"): rank(7, "GB.1")}
    # the store wins where it knows the identifier: the cache may be stale
    stored = {scoped("wa:44"): rank(3, "44")}
    assert resolve([ScopedClaim("acme", "wa-main", claim("GB.2", "wa:44"))], stored, NOW, remembered).keys == ["44"]


def test_the_same_identifier_on_another_channel_is_another_customer() -> None:
    stored = {("acme", "wa-second", "wa:44"): rank(1, "other")}
    assert resolve([ScopedClaim("acme", "wa-main", claim("44", "wa:44"))], stored, NOW).keys == ["44"]


@given(claims_strategy, stored_strategy)
def test_no_stored_identifier_moves_to_a_younger_key_and_every_write_is_needed(
        claims: list[ScopedClaim], stored: dict[Scoped, str]) -> None:
    resolution = resolve(claims, stored, NOW)
    claimed = {identifier for c in claims for identifier in c.identifiers()}
    assert set(resolution.new) == claimed - set(stored)
    assert all(stored[identifier] > lowered for identifier, lowered in resolution.lowered.items())
    assert all(resolution.ranks[identifier] <= stored.get(identifier, resolution.ranks[identifier])
               for identifier in claimed)
    # claims of one webhook that share identifiers end on one key: every claim's identifiers stand for its key
    for one, key in zip(claims, resolution.keys, strict=True):
        assert {key_of(resolution.ranks[identifier]) for identifier in one.identifiers()} == {key}


@given(claims_strategy, stored_strategy)
def test_what_was_recorded_needs_no_second_write_and_the_cache_then_settles_the_claims(
        claims: list[ScopedClaim], stored: dict[Scoped, str]) -> None:
    first = resolve(claims, stored, NOW)
    recorded = {**stored, **first.ranks}
    again = resolve(claims, recorded, NOW + 1)
    assert (again.new, again.lowered) == ({}, {})
    assert [settled_key(one, recorded) for one in claims] == first.keys


def test_the_cache_settles_a_claim_only_when_it_knows_every_identifier_under_one_key() -> None:
    both = ScopedClaim("acme", "wa-main", claim("GB.1", "bsuid:GB.1", "wa:44"))
    assert settled_key(both, {scoped("bsuid:GB.1"): rank(1, "44"), scoped("wa:44"): rank(1, "44")}) == "44"
    assert settled_key(both, {scoped("bsuid:GB.1"): rank(1, "44")}) is None  # the phone is new to it
    assert settled_key(both, {scoped("bsuid:GB.1"): rank(2, "GB.1"), scoped("wa:44"): rank(1, "44")}) is None
    assert settled_key(ScopedClaim("acme", "wa-main", claim("GB.9")), {}) == "GB.9"  # nothing to look up
