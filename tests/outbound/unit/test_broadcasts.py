"""The broadcast rules, pure: variable values and fallbacks, which number writes to whom, activity filters,
controls, progress counts, and the checks of a definition against its template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parley_common.events.common import ChannelType
from parley_outbound.domain.broadcasts import (
    ActivityFilter,
    BroadcastState,
    ControlRefused,
    MessageCount,
    Pool,
    VariableSource,
    check_mapping,
    controlled,
    message_id_for,
    progress,
    recipient_address,
    resolve_variables,
)
from parley_outbound.domain.templates import Template, TemplateStatus, VariableSpec, VariableType
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import PricingCategory, WindowFacts

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CONTACT = {"contact_id": "c1", "display_name": "Ann", "fields": {"tier": "gold", "empty": ""}}


def test_fields_constants_and_fallbacks() -> None:
    resolved = resolve_variables({
        "1": VariableSource(field="display_name"), "2": VariableSource(field="custom_fields.tier"),
        "3": VariableSource(constant="20%"), "4": VariableSource(field="custom_fields.city", fallback="your city"),
        "5": VariableSource(field="custom_fields.empty", fallback="n/a"),
        "6": VariableSource(field="custom_fields.zip"),
    }, CONTACT)
    assert resolved.values == {"1": "Ann", "2": "gold", "3": "20%", "4": "your city", "5": "n/a"}
    assert resolved.missing == ("6",)


POOL = Pool(("wa-1", "wa-2", "wa-3"), ChannelType.WHATSAPP)


def test_a_customer_hears_from_the_pool_number_they_talk_to() -> None:
    identities = [("tg", "77"), ("wa-2", "4915"), ("wa-3", "4915")]
    assert recipient_address(identities, POOL, frozenset({"wa-2", "wa-3"}), "c1") == ("wa-2", "4915")


@given(st.text(min_size=1, max_size=20))
def test_a_whatsapp_identity_elsewhere_is_reached_from_a_stable_pool_number(contact_id: str) -> None:
    address = recipient_address([("wa-other", "4916")], POOL, frozenset({"wa-other"}), contact_id)
    assert address is not None and address[1] == "4916" and address[0] in POOL.channel_ids
    assert address == recipient_address([("wa-other", "4916")], POOL, frozenset({"wa-other"}), contact_id)


def test_no_identity_the_pool_can_reach() -> None:
    assert recipient_address([("tg", "77")], POOL, frozenset(), "c1") is None
    telegram = Pool(("tg-1",), ChannelType.TELEGRAM)
    assert recipient_address([("tg-2", "77")], telegram, frozenset(), "c1") is None  # ids differ per bot


def test_activity_and_opt_in_filters() -> None:
    wrote = WindowFacts(last_customer_at=NOW - timedelta(days=2))
    assert ActivityFilter(active_since=NOW - timedelta(days=3)).admits(wrote)
    assert not ActivityFilter(active_since=NOW - timedelta(days=1)).admits(wrote)
    assert not ActivityFilter(active_since=NOW).admits(WindowFacts())
    assert ActivityFilter(inactive_since=NOW - timedelta(days=1)).admits(wrote)
    assert not ActivityFilter(inactive_since=NOW - timedelta(days=3)).admits(wrote)
    assert ActivityFilter(inactive_since=NOW).admits(WindowFacts())
    assert not ActivityFilter(opted_in=True).admits(WindowFacts(marketing_opted_out=True))
    assert ActivityFilter().admits(WindowFacts(marketing_opted_out=True))


@pytest.mark.parametrize(("action", "state", "target"), [
    ("pause", BroadcastState.RUNNING, BroadcastState.PAUSED),
    ("pause", BroadcastState.SCHEDULED, BroadcastState.PAUSED),
    ("resume", BroadcastState.PAUSED, BroadcastState.RUNNING),
    ("cancel", BroadcastState.PAUSED, BroadcastState.CANCELLED)])
def test_controls(action: str, state: BroadcastState, target: BroadcastState) -> None:
    assert controlled(action, state)[1] is target


@pytest.mark.parametrize(("action", "state"), [("resume", BroadcastState.RUNNING), ("pause", BroadcastState.PAUSED),
                                               ("cancel", BroadcastState.COMPLETED),
                                               ("resume", BroadcastState.CANCELLED)])
def test_controls_refused(action: str, state: BroadcastState) -> None:
    with pytest.raises(ControlRefused):
        controlled(action, state)


def test_message_ids_are_one_per_broadcast_and_contact() -> None:
    assert message_id_for("b1", "c1") == message_id_for("b1", "c1") != message_id_for("b2", "c1")


def test_progress_counts() -> None:
    counts = progress(10, {"missing_variable": 1, "no_identity": 1}, [
        MessageCount("read", None, 2, replied=1), MessageCount("delivered", None, 1), MessageCount("sent", None, 1),
        MessageCount("sending", None, 1), MessageCount("refused", "customer_blocked", 1),
        MessageCount("failed", "undeliverable", 1)])
    assert counts == {"recipients": 10, "pending": 1, "queued": 1, "sent": 4, "delivered": 3, "read": 2,
                      "replied": 1, "failed": {"undeliverable": 1},
                      "skipped": {"blocked": 1, "opted_out": 0, "missing_variable": 1, "no_identity": 1}}


@given(st.integers(0, 100), st.integers(0, 100))
def test_pending_never_negative(recipients: int, handled: int) -> None:
    assert progress(recipients, {}, [MessageCount("sent", None, handled)])["pending"] == max(0, recipients - handled)


TEMPLATE = Template(name="promo", language="en_US", category=PricingCategory.MARKETING,
                    status=TemplateStatus.APPROVED, body="Hi {{1}}, tier {{2}}",
                    variables=(VariableSpec("1"), VariableSpec("2", VariableType.DROPDOWN, ("gold", "silver"))))


def test_mapping_checked_against_the_template() -> None:
    fields = {"1": VariableSource(field="display_name"), "2": VariableSource(constant="gold")}
    check_mapping(TEMPLATE, fields, {}, {})
    check_mapping(TEMPLATE, {**fields, "2": VariableSource(field="custom_fields.tier")}, {}, {})
    for mapping, code in (({"1": fields["1"]}, "template_variable_missing"),
                          ({**fields, "3": VariableSource(constant="x")}, "template_variable_unknown"),
                          ({**fields, "2": VariableSource(constant="bronze")}, "template_variable_invalid")):
        with pytest.raises(InvalidRequest) as refused:
            check_mapping(TEMPLATE, mapping, {}, {})
        assert refused.value.code == code
