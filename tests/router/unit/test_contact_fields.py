"""Contact custom fields as routing facts: projection changes, value forms, merge, rule matching."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from parley_router.domain.contact_fields import as_facts, field_changes, folded, rule_value
from parley_router.domain.conversation import Assignee, AssigneeKind
from parley_router.domain.rules import Conditions, Facts, Rule, first_match

NOW = datetime(2026, 1, 5, 10, tzinfo=UTC)
VIP = Rule("vip", Assignee(AssigneeKind.TEAM, "vip"), Conditions(custom_fields=(("membership", "diamond"),)))
DEFAULT = Rule("rest", Assignee(AssigneeKind.TEAM, "default"))


def test_changes_split_into_set_and_removed_and_ignore_other_keys() -> None:
    changed = {"custom_fields.membership": "diamond", "custom_fields.old": None, "email": "a@b.c",
               "custom_fields.": "nameless"}
    assert field_changes(changed) == ({"membership": "diamond"}, ("old",))
    assert field_changes({"display_name": "X"}) == ({}, ())


def test_values_take_the_form_rules_compare_with() -> None:
    assert [rule_value(v) for v in (True, False, 3.0, 2.5, "diamond", "2026-01-05")] == [
        "true", "false", "3", "2.5", "diamond", "2026-01-05"]
    assert as_facts({"tier": 3.0, "vip": True, "gone": None}) == (("tier", "3"), ("vip", "true"))


def test_merge_keeps_the_primary_value_and_loses_nothing_of_the_other() -> None:
    assert folded({"membership": "gold"}, {"membership": "diamond", "city": "Oslo"}) == {
        "membership": "gold", "city": "Oslo"}


def test_custom_field_rule_routes_only_the_matching_contact() -> None:
    rules = (VIP, DEFAULT)
    diamond = Facts("whatsapp", "wa-1", custom_fields=as_facts({"membership": "diamond", "city": "Oslo"}))
    gold = Facts("whatsapp", "wa-1", custom_fields=as_facts({"membership": "gold"}))
    assert first_match(rules, diamond, NOW) is VIP
    assert first_match(rules, gold, NOW) is DEFAULT
    assert first_match(rules, Facts("whatsapp", "wa-1"), NOW) is DEFAULT


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.text(max_size=8), st.booleans(),
                                                                  st.floats(allow_nan=False, width=32))))
def test_a_rule_on_any_kept_field_matches_its_own_contact(fields: dict[str, object]) -> None:
    facts = as_facts(fields)
    for name, value in fields.items():
        rule = Rule("r", DEFAULT.target, Conditions(custom_fields=((name, rule_value(value)),)))
        assert first_match((rule,), Facts("whatsapp", "wa-1", custom_fields=facts), NOW) is rule
