"""Routing rules: first match wins, every condition kind, business hours."""

from __future__ import annotations

from datetime import UTC, datetime, time

from parley_router.domain.conversation import Assignee, AssigneeKind
from parley_router.domain.rules import BusinessHours, Conditions, Facts, Rule, first_match

MONDAY_NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SUNDAY_NOON = datetime(2026, 1, 4, 12, 0, tzinfo=UTC)
FACTS = Facts(channel_type="whatsapp", channel_id="wa-1", text="I want a REFUND please",
              labels=frozenset({"vip"}), language="es", custom_fields=(("brand", "acme"),))


def rule(rule_id: str, **conditions: object) -> Rule:
    return Rule(rule_id, Assignee(AssigneeKind.TEAM, rule_id), Conditions(**conditions))  # type: ignore[arg-type]


def test_first_matching_rule_wins() -> None:
    rules = (rule("email", channel_types=frozenset({"email"})), rule("refunds", keywords_any=("refund",)),
             rule("catch-all"))
    assert first_match(rules, FACTS, MONDAY_NOON).id == "refunds"  # type: ignore[union-attr]


def test_each_condition_kind_can_reject() -> None:
    rejecting = [
        rule("a", channel_types=frozenset({"telegram"})), rule("b", channel_ids=frozenset({"wa-2"})),
        rule("c", labels_any=frozenset({"b2b"})), rule("d", keywords_any=("invoice",)),
        rule("e", languages=frozenset({"en"})), rule("f", custom_fields=(("brand", "other"),)),
    ]
    for candidate in rejecting:
        assert first_match((candidate,), FACTS, MONDAY_NOON) is None, candidate.id
    accepting = rule("ok", channel_types=frozenset({"whatsapp"}), channel_ids=frozenset({"wa-1"}),
                     labels_any=frozenset({"vip", "b2b"}), keywords_any=("Refund",), languages=frozenset({"es"}),
                     custom_fields=(("brand", "acme"),))
    assert first_match((accepting,), FACTS, MONDAY_NOON) == accepting


def test_business_hours_in_the_tenant_timezone() -> None:
    inside, outside = rule("in", within_business_hours=True), rule("out", within_business_hours=False)
    assert first_match((inside, outside), FACTS, MONDAY_NOON).id == "in"  # type: ignore[union-attr]
    assert first_match((inside, outside), FACTS, SUNDAY_NOON).id == "out"  # type: ignore[union-attr]
    tokyo = BusinessHours(timezone="Asia/Tokyo", opens=time(9), closes=time(17))
    assert first_match((inside, outside), FACTS, MONDAY_NOON, tokyo).id == "out"  # type: ignore[union-attr]


def test_no_rules_means_no_match() -> None:
    assert first_match((), FACTS, MONDAY_NOON) is None
