"""Message templates: what may be sent from one, and the text it renders to (for the timeline).

Templates come from the provider (WhatsApp Business Management API) or are registered by managers; sending
checks the template is approved and every variable is filled with a valid value of its type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from parley_common.events.outbound import TemplateButtonParameter, TemplateContent
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


MEDIA_HEADERS = frozenset({"image", "video", "document"})
HEADER_TEXT_MAX = 60  # WhatsApp: a header is at most 60 characters, variables included
COUPON_CODE_MAX = 15  # WhatsApp copy-code buttons
BUTTON_VALUE_MAX = {"quick_reply": 1000, "url": 2000, "copy_code": COUPON_CODE_MAX}


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One button as the template defines it (WhatsApp Business Management API `BUTTONS` component)."""

    type: str  # quick_reply, url, copy_code, phone_number, otp, flow, …
    text: str = ""
    url: str | None = None

    def parameter(self) -> tuple[str, bool] | None:
        """The sub_type of the value this button takes at send time and whether it is required; None when it
        takes none (a static URL, a phone number)."""
        if self.type == "quick_reply":
            return "quick_reply", False  # the payload is optional: without one the button's text comes back
        if self.type == "url" and self.url and placeholders(self.url):
            return "url", True
        if self.type == "copy_code":
            return "copy_code", True
        return None


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
    header_format: str | None = None  # text, image, video, document, location, gif, product
    buttons: tuple[ButtonSpec, ...] = field(default_factory=tuple)

    def specs(self) -> dict[str, VariableSpec]:
        """Declared specs, plus a free-text spec for any body placeholder left undeclared."""
        declared = {spec.name: spec for spec in self.variables}
        for name in placeholders(" ".join(filter(None, (self.body, self.footer)))):
            declared.setdefault(name, VariableSpec(name))
        return declared

    def header_specs(self) -> dict[str, VariableSpec]:
        """The text header's variables: their own namespace (WhatsApp numbers them {{1}} apart from the body)."""
        names = placeholders(self.header_text) if self.header_text else ()
        return {name: VariableSpec(name, max_length=HEADER_TEXT_MAX) for name in names}


def render_template(template: Template, variables: Mapping[str, str]) -> str:
    """The text the customer will see; raises InvalidRequest when the template cannot be sent as asked."""
    return render_template_content(template, TemplateContent(name=template.name, language=template.language,
                                                             variables=dict(variables)))


def render_template_content(template: Template, content: TemplateContent) -> str:
    """Check a template send completely (status, body and header variables, header media, buttons) and
    return the text the customer will see (header, body, footer) for the timeline."""
    if template.status is not TemplateStatus.APPROVED:
        raise InvalidRequest("template_not_approved",
                             f"template {template.name!r} ({template.language}) is {template.status.value}",
                             "content.name")
    _check_variables(template.specs(), content.variables, "content.variables")
    _check_variables(template.header_specs(), content.header_variables, "content.header_variables")
    _check_header_media(template, content)
    _check_buttons(template.buttons, content)
    header = render_placeholders(template.header_text, content.header_variables).text if template.header_text \
        else None
    parts = (header, render_placeholders(template.body, content.variables).text,
             render_placeholders(template.footer, content.variables).text if template.footer else None)
    return "\n".join(part for part in parts if part)


def _check_variables(specs: dict[str, VariableSpec], values: Mapping[str, str], where: str) -> None:
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise InvalidRequest("template_variable_unknown", f"the template has no variable {unknown[0]!r}",
                             f"{where}.{unknown[0]}")
    for spec in specs.values():
        _check_value(spec, values.get(spec.name), f"{where}.{spec.name}")


def _check_header_media(template: Template, content: TemplateContent) -> None:
    header = template.header_format
    given = content.media_id is not None or content.header_media is not None
    if header in ("location", "gif", "product"):
        raise InvalidRequest("template_header_unsupported", f"templates with a {header} header cannot be sent yet",
                             "content.name")
    if header in MEDIA_HEADERS and not given:
        raise InvalidRequest("template_header_media_missing",
                             f"the template's {header} header needs a media_id or a header_media link",
                             "content.media_id")
    if header not in MEDIA_HEADERS and given:
        raise InvalidRequest("template_header_media_unexpected", "the template has no media header",
                             "content.media_id")
    if content.header_media is not None and content.header_media.format != header:
        raise InvalidRequest("template_header_media_invalid",
                             f"the template's header is {header}, not {content.header_media.format}",
                             "content.header_media.format")


def _check_buttons(buttons: tuple[ButtonSpec, ...], content: TemplateContent) -> None:
    given: dict[int, TemplateButtonParameter] = {}
    for value in content.buttons:
        where = f"content.buttons.{value.index}"
        expected = buttons[value.index].parameter() if value.index < len(buttons) else None
        if expected is None:
            raise InvalidRequest("template_variable_unknown", f"button {value.index} takes no value", where)
        if value.index in given:
            raise InvalidRequest("template_variable_invalid", f"button {value.index} is given twice", where)
        if value.sub_type != expected[0]:
            raise InvalidRequest("template_variable_invalid",
                                 f"button {value.index} is a {expected[0]} button, not {value.sub_type}", where)
        if len(value.value) > BUTTON_VALUE_MAX[value.sub_type] or not value.value.strip():
            raise InvalidRequest("template_variable_invalid", f"the value of button {value.index} is empty or "
                                 f"longer than {BUTTON_VALUE_MAX[value.sub_type]} characters", where)
        given[value.index] = value
    for index, button in enumerate(buttons):
        expected = button.parameter()
        if expected is not None and expected[1] and index not in given:
            raise InvalidRequest("template_variable_missing", f"button {index} ({button.type}) needs a value at send "
                                 "time", f"content.buttons.{index}")


def _check_value(spec: VariableSpec, value: str | None, where: str) -> None:
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
