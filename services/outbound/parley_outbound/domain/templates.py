"""Message templates: what may be sent from one, and the text it renders to (for the timeline).

Templates come from the provider (WhatsApp Business Management API) or are registered by managers; sending
checks the template is approved and every variable is filled with a valid value of its type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from parley_outbound.domain.validation import InvalidRequest, placeholders, render_placeholders
from parley_outbound.domain.window import PricingCategory


class TemplateStatus(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"
    PAUSED = "paused"
    DISABLED = "disabled"


class VariableType(StrEnum):
    TEXT = "text"
    DROPDOWN = "dropdown"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class VariableSpec:
    name: str
    type: VariableType = VariableType.TEXT
    options: tuple[str, ...] = ()
    max_length: int = 1024


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    language: str
    category: PricingCategory
    status: TemplateStatus
    body: str
    header_text: str | None = None
    footer: str | None = None
    variables: tuple[VariableSpec, ...] = field(default_factory=tuple)

    def specs(self) -> dict[str, VariableSpec]:
        """Declared specs, plus a free-text spec for any body placeholder left undeclared."""
        declared = {spec.name: spec for spec in self.variables}
        for name in placeholders(" ".join(filter(None, (self.header_text, self.body, self.footer)))):
            declared.setdefault(name, VariableSpec(name))
        return declared


def render_template(template: Template, variables: dict[str, str]) -> str:
    """The text the customer will see; raises InvalidRequest when the template cannot be sent as asked."""
    if template.status is not TemplateStatus.APPROVED:
        raise InvalidRequest("template_not_approved",
                             f"template {template.name!r} ({template.language}) is {template.status.value}",
                             "content.name")
    specs = template.specs()
    unknown = sorted(set(variables) - set(specs))
    if unknown:
        raise InvalidRequest("template_variable_unknown", f"the template has no variable {unknown[0]!r}",
                             f"content.variables.{unknown[0]}")
    for spec in specs.values():
        _check_value(spec, variables.get(spec.name))
    parts = (template.header_text, template.body, template.footer)
    return "\n".join(render_placeholders(part, variables).text for part in parts if part)


def _check_value(spec: VariableSpec, value: str | None) -> None:
    where = f"content.variables.{spec.name}"
    if value is None or not value.strip():
        raise InvalidRequest("template_variable_missing", f"variable {spec.name!r} must be filled", where)
    if len(value) > spec.max_length:
        raise InvalidRequest("template_variable_invalid", f"variable {spec.name!r} is too long", where)
    if spec.type is VariableType.DROPDOWN and value not in spec.options:
        raise InvalidRequest("template_variable_invalid", f"variable {spec.name!r} must be one of the options",
                             where)
    if spec.type is VariableType.DATE:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise InvalidRequest("template_variable_invalid", f"variable {spec.name!r} must be a date (YYYY-MM-DD)",
                                 where) from None
