"""Name folding, search conditions, per-element matching and the cursor."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_contacts.domain.card import Key, search_keys
from parley_contacts.domain.errors import InvalidInput
from parley_contacts.domain.names import MAX_NAME_KEYS, fold, name_keys
from parley_contacts.domain.search import (
    Condition,
    Criteria,
    conditions,
    decode_cursor,
    encode_cursor,
    matches,
    phone_prefix,
)


@pytest.mark.parametrize(("raw", "folded"), [
    ("José Álvarez", "jose alvarez"), ("ÇAĞRI  Öztürk", "cagri ozturk"), ("Straße", "strasse"),
    ("Łukasz Żółć", "lukasz zolc"), ("Søren", "soren"), ("\u0131ld\u0131z", "ildiz"), ("  Ана   Мария ", "ана мария"),
])
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@given(st.text(max_size=40))
def test_fold_is_idempotent_and_case_blind(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    assert fold(text.upper()) == fold(text.lower()) or not text.isascii()


@given(st.lists(st.text(alphabet=st.characters(categories=("L",)), min_size=1, max_size=8), min_size=1, max_size=4))
def test_every_word_starts_a_name_key(words: list[str]) -> None:
    keys = name_keys(" ".join(words))
    assert len(keys) <= MAX_NAME_KEYS
    for start in range(len(words)):
        suffix = fold(" ".join(words[start:]))
        assert suffix in keys or not suffix or len(keys) == MAX_NAME_KEYS


def test_conditions_exact_first_then_prefixes() -> None:
    found = conditions(Criteria(name="Jo", phone="+44 77", label="VIP", email="A@B.io"))
    assert found == [Condition(Key.EMAIL + "a@b.io"), Condition(Key.PHONE + "+4477", prefix=True),
                     Condition(Key.NAME + "jo", prefix=True), Condition(Key.LABEL + "vip")]


@pytest.mark.parametrize("raw", ["abc", "", "+", "+7 9a"])
def test_phone_prefix_needs_digits(raw: str) -> None:
    with pytest.raises(InvalidInput) as error:
        phone_prefix(raw)
    assert error.value.code == "invalid_phone_query"


def test_phone_prefix_normalises() -> None:
    assert phone_prefix("00 44 7700") == "+447700"
    assert phone_prefix("+1 (415)") == "+1415"


def test_matching_is_per_element() -> None:
    keys = search_keys({"display_name": "Zed", "phones": ["+15550001111"], "labels": ["vip"], "identities": []})
    assert matches(keys, [Condition(Key.NAME + "ze", prefix=True), Condition(Key.LABEL + "vip")])
    # "n:jose" lies between keys of this card, but no single key starts with it
    assert not matches(keys, [Condition(Key.NAME + "jose", prefix=True)])
    assert not matches(keys, [Condition(Key.LABEL + "vi")])


@given(st.integers(min_value=0, max_value=10**16), st.uuids())
def test_cursor_roundtrip(micros: int, contact: uuid.UUID) -> None:
    key = f"{micros:017d}|{contact.hex}"
    assert decode_cursor(encode_cursor(key)) == key


@pytest.mark.parametrize("cursor", ["garbage", "", "%%%", encode_cursor("1|x"), encode_cursor("0" * 17 + "|a b")])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)


def test_field_search_needs_name_and_value() -> None:
    with pytest.raises(InvalidInput) as error:
        conditions(Criteria(field="x"))
    assert error.value.code == "invalid_field_query"
    assert conditions(Criteria(field="tier", value="Gold")) == [Condition(Key.FIELD + "tier\x1fgold")]
