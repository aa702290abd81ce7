"""Validation, edits and merging of cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_contacts.domain import validation
from parley_contacts.domain.card import Key, identity, new_card
from parley_contacts.domain.edits import apply_patch, change_labels, set_blocked, set_field
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.merge import merge_cards

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def card(contact_id: str = "c1", **fields: Any) -> dict[str, Any]:
    base = new_card(contact_id, "acme", NOW, identities=[identity("wa", f"{contact_id}-wa")])
    base.update(fields)
    return base


@pytest.mark.parametrize(("call", "args", "code"), [
    (validation.phone, ("123456",), "invalid_phone"),
    (validation.phone, ("+999 123 4567",), "invalid_phone"),
    (validation.email, ("a@b",), "invalid_email"),
    (validation.email, ("a b@c.io",), "invalid_email"),
    (validation.label, ("x" * 65,), "label_too_long"),
    (validation.label, ("   ",), "invalid_label"),
    (validation.field_name, ("a.b",), "invalid_field_name"),
    (validation.field_name, ("$set",), "invalid_field_name"),
    (validation.field_name, ("",), "invalid_field_name"),
    (validation.field_type, ("color",), "unknown_field_type"),
    (validation.field_value, (validation.FieldType.NUMBER, "3"), "invalid_field_value"),
    (validation.field_value, (validation.FieldType.NUMBER, True), "invalid_field_value"),
    (validation.field_value, (validation.FieldType.DATE, "2026-13-01"), "invalid_field_value"),
    (validation.comment_text, ("  ",), "invalid_comment"),
])
def test_invalid_input_has_a_code(call: Any, args: tuple[Any, ...], code: str) -> None:
    with pytest.raises(InvalidInput) as error:
        call(*args)
    assert error.value.code == code


def test_valid_values_are_normalised() -> None:
    assert validation.phone("+7 (912) 345-67-89") == "+79123456789"
    assert validation.email(" Ana.Silva@Example.COM ") == "ana.silva@example.com"
    assert validation.field_value(validation.FieldType.NUMBER, 3) == 3.0
    assert validation.field_value(validation.FieldType.DATE, "2026-01-05") == "2026-01-05"
    assert validation.mentions("@bob, see @eve. (mail x@y.io) @bob") == ["bob", "eve"]


def test_a_bad_field_refuses_the_whole_patch() -> None:
    with pytest.raises(InvalidInput):
        apply_patch(card(), {"display_name": "ok", "phones": ["+14155550123", "12"]}, NOW)
    updated, changed = apply_patch(card(), {"display_name": " Ana ", "phones": ["+1 415 555 0123"]}, NOW)
    assert changed == {"display_name": "Ana", "phones": ["+14155550123"]}
    assert Key.PHONE + "+14155550123" in updated["search_keys"] and Key.NAME + "ana" in updated["search_keys"]


def test_labels_add_remove_and_report_changes() -> None:
    updated, added, removed = change_labels(card(labels=["a", "b"]), ["c", "a"], ["b", "zzz"], NOW)
    assert (updated["labels"], added, removed) == (["a", "c"], ["c"], ["b"])


def test_field_keeps_its_tenant_type() -> None:
    with pytest.raises(InvalidInput) as error:
        set_field(card(), "size", "text", "L", "number", NOW)
    assert error.value.code == "field_type_mismatch"
    updated, changed = set_field(card(), "size", "number", 42, "number", NOW)
    assert changed == {"custom_fields.size": 42.0} and Key.FIELD + "size\x1f42" in updated["search_keys"]


def test_block_one_channel_only() -> None:
    two = card(identities=[identity("wa", "1"), identity("tg", "2")])
    updated, changed = set_blocked(two, "wa", None, True, by="ana", reason="spam", now=NOW)
    assert [i["blocked"] for i in updated["identities"]] == [True, False]
    assert changed[0]["blocked_by"] == "ana"
    again, none = set_blocked(updated, "wa", "1", True, by="ana", reason=None, now=NOW)
    assert none == [] and again["identities"][0]["blocked"] is True
    with pytest.raises(InvalidInput):
        set_blocked(two, "viber", None, True, by="ana", reason=None, now=NOW)


labels = st.lists(st.sampled_from(["vip", "lead", "b2b", "late"]), unique=True, max_size=4)


@given(labels, labels, st.booleans())
def test_merge_loses_nothing(first_labels: list[str], second_labels: list[str], newer_second: bool) -> None:
    first = card("c1", labels=first_labels, display_name="Ana", platform_name="ana_w", platform_name_at=NOW,
                 custom_fields={"tier": {"type": "text", "value": "gold"}}, comment="pays late")
    second = card("c2", labels=second_labels, platform_name="Ana S", emails=["a@b.io"], comment="likes calls",
                  custom_fields={"tier": {"type": "text", "value": "x"}, "city": {"type": "text", "value": "Rio"}},
                  created_at=NOW - timedelta(days=3), last_activity_at=NOW + timedelta(hours=1),
                  platform_name_at=NOW + timedelta(minutes=1 if newer_second else -1))
    merged = merge_cards(first, second, NOW)
    assert merged["_id"] == "c1" and merged["merged_from"] == ["c2"]
    assert {i["external_user_id"] for i in merged["identities"]} == {"c1-wa", "c2-wa"}
    assert set(merged["labels"]) == set(first_labels) | set(second_labels)
    assert merged["custom_fields"]["tier"]["value"] == "gold" and merged["custom_fields"]["city"]["value"] == "Rio"
    assert merged["display_name"] == "Ana" and merged["platform_name"] == ("Ana S" if newer_second else "ana_w")
    assert merged["comment"] == "pays late\n---\nlikes calls"
    assert merged["created_at"] == NOW - timedelta(days=3)
    assert merged["activity_key"].endswith("|c1") and merged["last_activity_at"] == NOW + timedelta(hours=1)
    assert Key.USER_ID + "c2-wa" in merged["search_keys"] and Key.EMAIL + "a@b.io" in merged["search_keys"]


def test_merge_refuses_itself_and_other_tenants() -> None:
    with pytest.raises(InvalidInput) as error:
        merge_cards(card("c1"), card("c1"), NOW)
    assert error.value.code == "merge_same_contact"
    with pytest.raises(InvalidInput):
        merge_cards(card("c1"), card("c2", tenant_id="globex"), NOW)
