"""WhatsApp template header media and button parameters: refused at accept when incomplete (pure domain),
composed into the Cloud API's header / body / button components, and kept by the template sync."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from parley_common.channel_catalogue import MB, send_size_limit
from parley_common.events.common import ChannelType
from parley_common.events.outbound import TemplateButtonParameter, TemplateContent, TemplateHeaderMedia
from parley_outbound.adapters.providers.whatsapp import whatsapp_body
from parley_outbound.adapters.providers.whatsapp_templates import from_meta
from parley_outbound.domain.compose import template_call
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.templates import ButtonSpec, Template, TemplateStatus, render_template_content
from parley_outbound.domain.validation import InvalidRequest
from parley_outbound.domain.window import PricingCategory

RECEIPT = Template(
    name="order_ready", language="en_US", category=PricingCategory.UTILITY, status=TemplateStatus.APPROVED,
    body="Hi {{1}}, order {{2}} is ready.", header_format="document", footer="Acme",
    buttons=(ButtonSpec("quick_reply", "Stop promotions"), ButtonSpec("url", "Track", "https://acme.example/t/{{1}}"),
             ButtonSpec("copy_code", "Copy code"), ButtonSpec("phone_number", "Call us")),
)
BUTTONS = (TemplateButtonParameter(index=1, sub_type="url", value="4471"),
           TemplateButtonParameter(index=2, sub_type="copy_code", value="SAVE25"))


def content(**fields: Any) -> TemplateContent:
    base: dict[str, Any] = {"name": "order_ready", "language": "en_US", "variables": {"1": "Dana", "2": "4471"},
                            "media_id": "m-receipt", "buttons": BUTTONS}
    return TemplateContent(**{**base, **fields})


def refusal(template: Template, sent: TemplateContent) -> tuple[str, str | None]:
    with pytest.raises(InvalidRequest) as raised:
        render_template_content(template, sent)
    return raised.value.code, raised.value.field


def test_a_complete_send_renders_the_timeline_text_as_before() -> None:
    assert render_template_content(RECEIPT, content()) == "Hi Dana, order 4471 is ready.\nAcme"
    link = TemplateHeaderMedia(format="document", link="https://files.example/r.pdf", filename="r.pdf")
    assert render_template_content(RECEIPT, content(media_id=None, header_media=link))


@pytest.mark.parametrize(("sent", "code", "field"), [
    (content(media_id=None), "template_header_media_missing", "content.media_id"),
    (content(media_id=None, header_media=TemplateHeaderMedia(format="image", link="https://x/y.png")),
     "template_header_media_invalid", "content.header_media.format"),
    (content(buttons=BUTTONS[1:]), "template_variable_missing", "content.buttons.1"),
    (content(buttons=BUTTONS[:1]), "template_variable_missing", "content.buttons.2"),
    (content(buttons=(*BUTTONS, TemplateButtonParameter(index=3, sub_type="url", value="x"))),
     "template_variable_unknown", "content.buttons.3"),
    (content(buttons=(*BUTTONS, TemplateButtonParameter(index=7, sub_type="quick_reply", value="x"))),
     "template_variable_unknown", "content.buttons.7"),
    (content(buttons=(TemplateButtonParameter(index=1, sub_type="copy_code", value="4471"), BUTTONS[1])),
     "template_variable_invalid", "content.buttons.1"),
    (content(buttons=(BUTTONS[0], TemplateButtonParameter(index=2, sub_type="copy_code", value="X" * 16))),
     "template_variable_invalid", "content.buttons.2"),
    (content(buttons=(*BUTTONS, BUTTONS[0])), "template_variable_invalid", "content.buttons.1"),
])
def test_incomplete_header_or_buttons_are_refused_at_accept(sent: TemplateContent, code: str, field: str) -> None:
    assert refusal(RECEIPT, sent) == (code, field)


def test_quick_reply_payload_is_optional_and_checked_by_type() -> None:
    with_payload = (*BUTTONS, TemplateButtonParameter(index=0, sub_type="quick_reply", value="STOP"))
    assert render_template_content(RECEIPT, content(buttons=with_payload))
    static = replace(RECEIPT, buttons=(ButtonSpec("url", "Site", "https://acme.example/"),))
    assert refusal(static, content(buttons=BUTTONS[:1])) == ("template_variable_unknown", "content.buttons.1")


def test_text_header_variables_have_their_own_namespace() -> None:
    template = replace(RECEIPT, header_format="text", header_text="Order {{1}}", buttons=())
    sent = content(media_id=None, buttons=(), header_variables={"1": "#4471"})
    assert render_template_content(template, sent) == "Order #4471\nHi Dana, order 4471 is ready.\nAcme"
    assert refusal(template, content(media_id=None, buttons=())) == (
        "template_variable_missing", "content.header_variables.1")
    assert refusal(template, sent.model_copy(update={"header_variables": {"1": "x" * 61}}))[0] == \
        "template_variable_invalid"
    assert refusal(template, sent.model_copy(update={"media_id": "m-1"}))[0] == "template_header_media_unexpected"


def test_headers_that_cannot_be_sent_are_refused_clearly() -> None:
    assert refusal(replace(RECEIPT, header_format="location"), content())[0] == "template_header_unsupported"


def test_components_for_whatsapp() -> None:
    call = template_call(content(buttons=(BUTTONS[0],)), media_kind="document")
    message = Outgoing(message_id="m", recipient="447700900001", template=call, media_id="m-receipt")
    body = whatsapp_body(message, {"id": "1037", "filename": "receipt.pdf"})
    assert body["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "document", "document": {"id": "1037", "filename": "receipt.pdf"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Dana"}, {"type": "text", "text": "4471"}]},
        {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "4471"}]},
    ]
    by_link = template_call(content(media_id=None, buttons=(), header_media=TemplateHeaderMedia(
        format="video", link="https://files.example/v.mp4")), media_kind="document")
    header = whatsapp_body(replace(message, template=by_link))["template"]["components"][0]
    assert header == {"type": "header", "parameters": [{"type": "video", "video": {"link": "https://files.example/v.mp4"}}]}
    named = template_call(content(variables={"first_name": "Dana"}, media_id=None, buttons=()), "document")
    assert whatsapp_body(replace(message, template=named))["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Dana", "parameter_name": "first_name"}]}]


def test_sync_keeps_header_format_and_button_definitions() -> None:
    item = {"id": "1", "name": "order_update", "language": "en_US", "status": "APPROVED", "category": "UTILITY",
            "components": [
                {"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::ZXhhbXBsZQ=="]}},
                {"type": "BODY", "text": "Hi {{1}}, your order total is {{2}}."},
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Stop promotions"},
                    {"type": "URL", "text": "Track", "url": "https://example.com/t/{{1}}"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+447700900000"}]}]}
    template = from_meta(item)
    assert template["header"] == {"format": "document", "text": None}
    assert [button["type"] for button in template["buttons"]] == ["quick_reply", "url", "phone_number"]
    assert template["buttons"][1]["url"] == "https://example.com/t/{{1}}"
    assert template["buttons"][2]["phone_number"] == "+447700900000"


def test_fetch_limits_follow_the_channel_table() -> None:
    assert send_size_limit(ChannelType.WHATSAPP, "image") == 5 * MB
    assert send_size_limit(ChannelType.WHATSAPP, "document") == 100 * MB
    assert send_size_limit(ChannelType.TELEGRAM, "image") == 10 * MB
    assert send_size_limit(ChannelType.EMAIL, "file") == 25 * MB
    assert send_size_limit(ChannelType.VIBER, "video") == 26 * MB
    assert send_size_limit(ChannelType.VIBER, "sticker") == 50 * MB  # no such kind: the channel's largest
