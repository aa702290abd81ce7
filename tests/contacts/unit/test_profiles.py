"""What a Graph API profile answer means and what it changes on a card (pure: parley_contacts.domain.profiles)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parley_contacts.domain.card import identity, new_card
from parley_contacts.domain.profiles import Profile, platform_identities, profile_of, with_profile

NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)


def card(**fields: object) -> dict[str, object]:
    base = new_card("c1", "acme", NOW, identities=[identity("ig-shop", "7001", channel_type="instagram"),
                                                    identity("wa-main", "4477", channel_type="whatsapp")])
    return {**base, **fields}


@pytest.mark.parametrize(("answer", "expected"), [
    ({"first_name": "Ana", "last_name": "Lima", "profile_pic": "https://cdn.example/a.jpg"},
     Profile("Ana Lima", None, "https://cdn.example/a.jpg")),  # Messenger's shape
    ({"name": "Inès", "username": "ines.o", "profile_pic": "https://cdn.example/i.jpg"},
     Profile("Inès", "ines.o", "https://cdn.example/i.jpg")),  # Instagram's shape
    ({"first_name": "Ana"}, Profile("Ana", None, None)),
    ({"name": "  ", "profile_pic": "javascript:alert(1)"}, Profile(None, None, None)),  # never an unsafe URL
    ({"name": 42, "username": ["x"], "profile_pic": None}, Profile(None, None, None)),
    ({"name": "x" * 500}, Profile("x" * 200, None, None)),
])
def test_an_answer_becomes_a_profile(answer: dict[str, object], expected: Profile) -> None:
    assert profile_of(answer) == expected


def test_a_first_lookup_fills_what_the_card_lacks_and_marks_the_identity() -> None:
    updated, changed = with_profile(card(), "ig-shop", "7001", Profile("Inès", "ines.o", "https://p/1.jpg"), NOW,
                                    refresh=False)
    assert changed == {"platform_name": "Inès", "avatar_url": "https://p/1.jpg"}
    assert updated["platform_name"] == "Inès" and updated["avatar_from_platform"] is True
    ig, wa = updated["identities"]
    assert (ig["platform_name"], ig["username"], ig["profile_fetched_at"]) == ("Inès", "ines.o", NOW)
    assert "profile_fetched_at" not in wa
    assert any("ines" in key for key in updated["search_keys"])  # findable by the name


def test_an_agents_picture_and_a_held_name_stay_unless_refreshed_and_the_agents_picture_always_stays() -> None:
    agent_set = card(platform_name="Old", avatar_url="https://agent/set.jpg")
    profile = Profile("New", None, "https://p/2.jpg")
    _, first = with_profile(agent_set, "ig-shop", "7001", profile, NOW, refresh=False)
    assert first == {}
    updated, refreshed = with_profile(agent_set, "ig-shop", "7001", profile, NOW, refresh=True)
    assert refreshed == {"platform_name": "New"} and updated["avatar_url"] == "https://agent/set.jpg"
    from_platform = card(avatar_url="https://p/1.jpg", avatar_from_platform=True)
    _, renewed = with_profile(from_platform, "ig-shop", "7001", profile, NOW, refresh=True)
    assert renewed == {"platform_name": "New", "avatar_url": "https://p/2.jpg"}


def test_only_messenger_and_instagram_identities_have_a_profile_to_read() -> None:
    fresh = card()
    assert [i["channel_id"] for i in platform_identities(fresh)] == ["ig-shop"]
    looked_up, _ = with_profile(fresh, "ig-shop", "7001", Profile(None, None, None), NOW, refresh=False)
    assert platform_identities(looked_up, looked_up=False) == []
    assert [i["channel_id"] for i in platform_identities(looked_up, looked_up=True)] == ["ig-shop"]
