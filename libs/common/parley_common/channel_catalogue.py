"""What Parley knows about each channel type, in one place: how a customer is identified, which messaging-window
rule applies and with which lengths, which attachments go out and how large, what comes in, and how fast we send.

Every service reads these facts from here (media's size checks, outbound's window rule, attachment rules and
rate defaults); a channel type missing from `CATALOGUE` is refused by `facts()`, never allowed by default.
Sources: /work/shared/reference/channels.md (section per channel in `reference`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from parley_common.events.common import ChannelType

KB = 1024
MB = 1024 * KB


class WindowKind(StrEnum):
    """Which messaging-window rule a channel follows (the rules themselves live in outbound's window policy)."""

    TEMPLATES_OUTSIDE = "templates_outside"  # free-form inside the service window, approved templates outside
    HUMAN_AGENT_TAG = "human_agent_tag"  # free-form inside the window; a human may reply later with a tag
    CUSTOMER_FIRST = "customer_first"  # no time window, but the customer must have written first
    SUBSCRIPTION = "subscription"  # only subscribed customers; unsubscribing stops sends
    NONE = "none"  # any time


@dataclass(frozen=True, slots=True)
class WindowRule:
    kind: WindowKind
    service_window: timedelta | None = None  # free-form replies within this long after the customer's message
    human_agent_window: timedelta | None = None  # HUMAN_AGENT-tagged replies by a person within this long
    free_entry_window: timedelta | None = None  # pricing only: free replies after a free entry point

    @property
    def timed(self) -> bool:
        return self.service_window is not None


@dataclass(frozen=True, slots=True)
class AttachmentRule:
    """One kind of attachment a channel takes from us. No MIME types: any type that is not dangerous."""

    kind: str  # the provider's word: image, video, audio, document, sticker, file
    mime_types: frozenset[str]
    max_bytes: int

    def accepts_type(self, mime_type: str) -> bool:
        return not self.mime_types or mime_type in self.mime_types


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    type: ChannelType
    customer_identifiers: tuple[str, ...]  # what identifies a customer, most stable first
    window: WindowRule
    send_attachments: tuple[AttachmentRule, ...]  # specific kinds first, catch-alls (no MIME types) last
    receive_max_bytes: int  # the provider's own ceiling for what a customer sends us
    send_rate_per_second: float  # default sends per second per sending account
    text_max_chars: int | None
    reference: str  # where the facts come from in shared/reference/channels.md


class UnknownChannelType(LookupError):
    """A channel type without catalogue facts: refused, never treated as some default."""


OFFICE_TYPES = frozenset({
    "application/msword", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
})

_DAY = timedelta(hours=24)


def _rule(kind: str, mime_types: set[str] | frozenset[str], max_bytes: int) -> AttachmentRule:
    return AttachmentRule(kind, frozenset(mime_types), max_bytes)


# Messenger and Instagram share the Send API's attachment types (§2.4); the reference gives no sizes of its own
# for them, so both use the one Meta attachment table (8 MB images, 25 MB otherwise).
_META_ATTACHMENTS = (
    _rule("image", {"image/jpeg", "image/png", "image/gif"}, 8 * MB),
    _rule("video", {"video/mp4"}, 25 * MB),
    _rule("audio", {"audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg"}, 25 * MB),
    _rule("file", set(), 25 * MB),
)
_META_WINDOW = WindowRule(WindowKind.HUMAN_AGENT_TAG, service_window=_DAY, human_agent_window=timedelta(days=7))

CATALOGUE: MappingProxyType[ChannelType, ChannelFacts] = MappingProxyType({
    ChannelType.WHATSAPP: ChannelFacts(
        type=ChannelType.WHATSAPP,
        customer_identifiers=("business_scoped_user_id", "wa_id", "phone_e164", "username"),
        window=WindowRule(WindowKind.TEMPLATES_OUTSIDE, service_window=_DAY, free_entry_window=timedelta(hours=72)),
        send_attachments=(
            _rule("image", {"image/jpeg", "image/png"}, 5 * MB),
            _rule("video", {"video/mp4", "video/3gpp"}, 16 * MB),
            _rule("audio", {"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, 16 * MB),
            _rule("sticker", {"image/webp"}, 500 * KB),
            _rule("document", {"text/plain", "application/pdf"} | OFFICE_TYPES, 100 * MB),
        ),
        receive_max_bytes=100 * MB, send_rate_per_second=80.0, text_max_chars=4096, reference="§1.5, §1.11, §1.13",
    ),
    ChannelType.MESSENGER: ChannelFacts(
        type=ChannelType.MESSENGER, customer_identifiers=("psid",), window=_META_WINDOW,
        send_attachments=_META_ATTACHMENTS, receive_max_bytes=25 * MB, send_rate_per_second=40.0,
        text_max_chars=2000, reference="§2.4, §2.5",
    ),
    ChannelType.INSTAGRAM: ChannelFacts(
        type=ChannelType.INSTAGRAM, customer_identifiers=("igsid",), window=_META_WINDOW,
        send_attachments=_META_ATTACHMENTS, receive_max_bytes=25 * MB, send_rate_per_second=40.0,
        text_max_chars=1000, reference="§2.4, §2.5",
    ),
    ChannelType.TELEGRAM: ChannelFacts(
        type=ChannelType.TELEGRAM, customer_identifiers=("chat_id",), window=WindowRule(WindowKind.CUSTOMER_FIRST),
        send_attachments=(
            _rule("image", {"image/jpeg", "image/png", "image/webp"}, 10 * MB),
            _rule("document", set(), 50 * MB),
        ),
        receive_max_bytes=20 * MB, send_rate_per_second=30.0, text_max_chars=4096, reference="§3.5, §3.7",
    ),
    ChannelType.VIBER: ChannelFacts(
        type=ChannelType.VIBER, customer_identifiers=("viber_user_id",), window=WindowRule(WindowKind.SUBSCRIPTION),
        send_attachments=(
            _rule("image", {"image/jpeg", "image/png", "image/gif"}, 1 * MB),
            _rule("video", {"video/mp4"}, 26 * MB),
            _rule("file", set(), 50 * MB),
        ),
        # Bots receive what a Viber user can send; 200 MB is Viber's largest file (Business Messages' limit).
        receive_max_bytes=200 * MB, send_rate_per_second=50.0, text_max_chars=7000, reference="§4.5, §4.8",
    ),
    ChannelType.EMAIL: ChannelFacts(
        type=ChannelType.EMAIL, customer_identifiers=("email",), window=WindowRule(WindowKind.NONE),
        send_attachments=(_rule("file", set(), 25 * MB),),
        receive_max_bytes=35 * MB, send_rate_per_second=20.0, text_max_chars=None, reference="§5",
    ),
    ChannelType.SANDBOX: ChannelFacts(
        type=ChannelType.SANDBOX, customer_identifiers=("sandbox_user_id",), window=WindowRule(WindowKind.NONE),
        send_attachments=(_rule("file", set(), 25 * MB),),
        receive_max_bytes=25 * MB, send_rate_per_second=50.0, text_max_chars=None, reference="(local fake)",
    ),
})


def facts(channel_type: ChannelType | str) -> ChannelFacts:
    """The catalogue's facts for this channel type; UnknownChannelType when there are none."""
    try:
        return CATALOGUE[ChannelType(channel_type)]
    except (KeyError, ValueError):
        raise UnknownChannelType(f"no channel facts for {channel_type!r}") from None


def attachment_rule(channel_type: ChannelType | str, mime_type: str, size_bytes: int) -> AttachmentRule | None:
    """The rule an outgoing attachment travels under, or None when the channel refuses it.

    A listed MIME type is held to its own kind's size (a 2 MB Viber JPEG is refused, not sent as a file);
    other types fall to the channel's catch-all."""
    rules = facts(channel_type).send_attachments
    for rule in rules:
        if mime_type in rule.mime_types:
            return rule if size_bytes <= rule.max_bytes else None
    for rule in rules:
        if not rule.mime_types and size_bytes <= rule.max_bytes:
            return rule
    return None


def send_size_limit(channel_type: ChannelType | str, kind: str) -> int:
    """The most bytes the channel takes for this kind of attachment (its largest when it has no such kind)."""
    rules = facts(channel_type).send_attachments
    return max((rule.max_bytes for rule in rules if rule.kind == kind), default=max(r.max_bytes for r in rules))


def send_max_bytes(channel_type: ChannelType | str) -> int:
    return max(rule.max_bytes for rule in facts(channel_type).send_attachments)
