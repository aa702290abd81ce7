"""The marketing preference lands on the identity it was given for; an older one never undoes a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from parley_contacts.domain.preferences import with_marketing_preference

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
CARD = {"_id": "c1", "version": 3, "identities": [
    {"channel_id": "wa", "external_user_id": "447700900123"},
    {"channel_id": "wa-2", "external_user_id": "447700900123"}]}


def test_the_preference_is_recorded_on_its_identity_only() -> None:
    card = with_marketing_preference(CARD, "wa", "447700900123", True, AT)
    assert card is not None
    assert card["identities"][0] == {"channel_id": "wa", "external_user_id": "447700900123",
                                     "marketing_opted_out": True, "marketing_preference_at": AT}
    assert card["identities"][1] == CARD["identities"][1]


def test_an_older_preference_changes_nothing_and_an_unknown_identity_neither() -> None:
    stopped = with_marketing_preference(CARD, "wa", "447700900123", True, AT)
    assert stopped is not None
    held = {**stopped, "identities": [{**stopped["identities"][0], "marketing_preference_at": AT.replace(tzinfo=None)},
                                      stopped["identities"][1]]}  # as MongoDB gives it back: naive UTC
    assert with_marketing_preference(held, "wa", "447700900123", False, AT - timedelta(seconds=1)) is None
    resumed = with_marketing_preference(held, "wa", "447700900123", False, AT + timedelta(seconds=1))
    assert resumed is not None and resumed["identities"][0]["marketing_opted_out"] is False
    assert with_marketing_preference(CARD, "tg", "1", True, AT) is None
