"""Template sending rules: approved only, every variable filled with a valid value of its type."""

from __future__ import annotations

import pytest

from parley_outbound.domain.templates import Template, TemplateStatus, VariableSpec, VariableType, render_template
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import PricingCategory

TEMPLATE = Template(
    name="delivery_slot", language="en_US", category=PricingCategory.UTILITY, status=TemplateStatus.APPROVED,
    header_text="Delivery", body="Hi {{name}}, your slot is {{slot}} on {{day}}.", footer="Reply STOP to opt out",
    variables=(VariableSpec("slot", VariableType.DROPDOWN, ("morning", "afternoon")),
               VariableSpec("day", VariableType.DATE)),
)


def test_renders_header_body_and_footer() -> None:
    text = render_template(TEMPLATE, {"name": "Dana", "slot": "morning", "day": "2026-12-05"})
    assert text == "Delivery\nHi Dana, your slot is morning on 2026-12-05.\nReply STOP to opt out"


@pytest.mark.parametrize(("variables", "code"), [
    ({"slot": "morning", "day": "2026-12-05"}, "template_variable_missing"),
    ({"name": " ", "slot": "morning", "day": "2026-12-05"}, "template_variable_missing"),
    ({"name": "Dana", "slot": "evening", "day": "2026-12-05"}, "template_variable_invalid"),
    ({"name": "Dana", "slot": "morning", "day": "Friday"}, "template_variable_invalid"),
    ({"name": "Dana", "slot": "morning", "day": "2026-12-05", "extra": "x"}, "template_variable_unknown"),
])
def test_refuses_incomplete_or_invalid_variables(variables: dict[str, str], code: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        render_template(TEMPLATE, variables)
    assert raised.value.code == code


@pytest.mark.parametrize("status", [s for s in TemplateStatus if s is not TemplateStatus.APPROVED])
def test_only_approved_templates_are_sent(status: TemplateStatus) -> None:
    from dataclasses import replace
    with pytest.raises(InvalidRequest) as raised:
        render_template(replace(TEMPLATE, status=status), {"name": "D", "slot": "morning", "day": "2026-12-05"})
    assert raised.value.code == "template_not_approved"
