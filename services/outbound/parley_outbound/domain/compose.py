"""From a SendMessage command to what the policy judges and what the adapter sends. Pure."""

from __future__ import annotations

from parley_common.events.outbound import (
    OutboundContent,
    OutboundMedia,
    OutboundText,
    SavedReplyContent,
    SendMessage,
    TemplateContent,
)
from parley_outbound.domain.outgoing import ButtonCall, HeaderCall, Outgoing, TemplateCall
from parley_outbound.domain.window import Decision, MessageKind, PricingCategory, SendIntent


def message_kind(content: OutboundContent) -> MessageKind:
    return MessageKind.TEMPLATE if isinstance(content, TemplateContent) else MessageKind.FREE_FORM


def intent_for(command: SendMessage, template_category: PricingCategory | None = None) -> SendIntent:
    return SendIntent(command.channel_type, command.sender.kind, message_kind(command.content), template_category)


def ordered_names(variables: dict[str, str]) -> tuple[str, ...]:
    """Positional template variables {{1}}, {{2}}… in numeric order (a plain sort puts "10" before "2")."""
    def position(name: str) -> tuple[int, str]:
        return (int(name), "") if name.isdigit() else (1 << 30, name)
    return tuple(sorted(variables, key=position))


def ordered_parameters(variables: dict[str, str]) -> tuple[str, ...]:
    return tuple(variables[name] for name in ordered_names(variables))


def template_call(content: TemplateContent, media_kind: str) -> TemplateCall:
    """The provider's view of a template send: body values, the header (text values, the attachment, or a
    link), and the button values in template order. The media kind is the provider's word for the attachment."""
    header = None
    if content.header_variables:
        header = HeaderCall("text", ordered_parameters(content.header_variables))
    elif content.header_media is not None:
        header = HeaderCall(content.header_media.format, link=content.header_media.link,
                            filename=content.header_media.filename)
    elif content.media_id is not None:
        header = HeaderCall(media_kind, from_attachment=True)
    buttons = tuple(ButtonCall(button.index, button.sub_type, button.value)
                    for button in sorted(content.buttons, key=lambda button: button.index))
    return TemplateCall(content.name, content.language, ordered_parameters(content.variables), header, buttons,
                        ordered_names(content.variables))


def attachment_of(content: OutboundContent) -> str | None:
    if isinstance(content, OutboundText | OutboundMedia | TemplateContent):
        return content.media_id
    return None


def text_of(content: OutboundContent, rendered_template: str | None = None) -> str | None:
    if isinstance(content, OutboundText):
        return content.text
    if isinstance(content, OutboundMedia):
        return content.caption
    if isinstance(content, TemplateContent):
        return rendered_template
    return None


def outgoing(command: SendMessage, decision: Decision, media_url: str | None, media_kind: str = "document",
             text: str | None = None, headers: dict[str, str] | None = None) -> Outgoing:
    content = command.content
    template = None
    if isinstance(content, TemplateContent):
        template = template_call(content, media_kind)
    if isinstance(content, SavedReplyContent):
        raise ValueError("saved replies are rendered to text before composing")
    email = command.email
    return Outgoing(
        message_id=command.message_id,
        recipient=command.external_user_id,
        text=text if text is not None else text_of(content),
        media_url=media_url,
        media_kind=media_kind,
        media_id=attachment_of(content),
        template=template,
        tag=decision.tag,
        subject=email.subject if email else None,
        cc=email.cc if email else (),
        bcc=email.bcc if email else (),
        headers=dict(headers or {}),
    )
