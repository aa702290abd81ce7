"""Saved replies: rendering with custom fields, and reading custom-field changes from contacts events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_outbound.domain.saved_replies import applies_to, custom_field_changes, field_text, render_saved_reply
from parley_outbound.domain.validation import InvalidRequest


def test_placeholders_take_the_contacts_custom_fields() -> None:
    text = render_saved_reply("Hi {{ name }}, your tier is {{membership}}.", {"membership": "diamond", "name": "Ann"})
    assert text == "Hi Ann, your tier is diamond."


def test_a_missing_field_refuses_and_names_every_missing_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        render_saved_reply("{{a}} {{membership}} {{city}} {{membership}}", {"a": "x"})
    assert refused.value.code == "saved_reply_field_missing"
    assert refused.value.field == "membership, city"
    assert "membership, city" in refused.value.message


def test_a_text_without_placeholders_is_sent_as_it_is() -> None:
    assert render_saved_reply("Thanks, we are on it", {}) == "Thanks, we are on it"


def test_a_reply_rendering_to_blank_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        render_saved_reply("  {{note}} ", {"note": ""})
    assert refused.value.code == "saved_reply_empty"


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), st.text(min_size=1, alphabet="abc xyz")))
def test_every_known_field_renders_to_its_value(fields: dict[str, str]) -> None:
    text = "|".join(f"{{{{{name}}}}}" for name in fields) + "."
    assert render_saved_reply(text, fields) == "|".join(fields.values()) + "."


def test_field_values_read_as_text() -> None:
    assert field_text("gold") == "gold"
    assert field_text(42) == "42"
    assert field_text(True) == "yes"
    assert field_text(date(2026, 1, 2)) == "2026-01-02"
    assert field_text(datetime(2026, 1, 2, 10, tzinfo=UTC)) == "2026-01-02"
    assert field_text(["a", "b"]) == "a, b"
    assert field_text({"type": "text", "value": "diamond"}) == "diamond"
    assert field_text(None) is None
    assert field_text("") is None


def test_changes_pick_custom_fields_only() -> None:
    changed = {"custom_fields.membership": "diamond", "custom_fields.city": None, "display_name": "Ann",
               "custom_fields": {"tier": {"type": "number", "value": 3}}}
    assert custom_field_changes(changed) == {"membership": "diamond", "city": None, "tier": "3"}
    assert custom_field_changes({"platform_name": "Ann"}) == {}


def test_channel_types_limit_where_a_reply_applies() -> None:
    assert applies_to((), "telegram")
    assert applies_to(("whatsapp",), "whatsapp")
    assert not applies_to(("whatsapp",), "telegram")
