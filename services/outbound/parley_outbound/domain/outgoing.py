"""What the sender hands to a channel adapter: the message in channel-neutral terms, already checked."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class HeaderCall:
    """A template's header parameter: text values, or media (the message's attachment, or a public link)."""

    format: str  # text, image, video, document
    text_parameters: tuple[str, ...] = ()
    link: str | None = None
    filename: str | None = None
    from_attachment: bool = False  # the media is the message's attachment (`Outgoing.media_id`)


@dataclass(frozen=True, slots=True)
class ButtonCall:
    index: int  # the button's 0-based position in the template
    sub_type: str  # quick_reply, url, copy_code
    value: str


@dataclass(frozen=True, slots=True)
class TemplateCall:
    name: str
    language: str
    body_parameters: tuple[str, ...] = ()  # positional {{1}}, {{2}}… in order
    header: HeaderCall | None = None
    buttons: tuple[ButtonCall, ...] = ()
    body_names: tuple[str, ...] = ()  # the variable names, in body_parameters order (named templates)


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: str
    recipient: str
    text: str | None = None
    media_url: str | None = None  # a link the provider fetches itself, when the media cannot be uploaded
    media_kind: str = "document"  # image, video, audio, document, sticker (the provider's word)
    template: TemplateCall | None = None
    tag: str | None = None  # Messenger/Instagram HUMAN_AGENT
    subject: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    media_id: str | None = None  # the attachment stored by media: fetched in the cluster and uploaded

    @property
    def has_media(self) -> bool:
        return self.media_id is not None or self.media_url is not None
