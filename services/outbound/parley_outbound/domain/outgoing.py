"""What the sender hands to a channel adapter: the message in channel-neutral terms, already checked."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TemplateCall:
    name: str
    language: str
    body_parameters: tuple[str, ...] = ()  # positional {{1}}, {{2}}… in order


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: str
    recipient: str
    text: str | None = None
    media_url: str | None = None
    media_kind: str = "document"  # image, video, audio, document, sticker (the provider's word)
    template: TemplateCall | None = None
    tag: str | None = None  # Messenger/Instagram HUMAN_AGENT
    subject: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
