"""Inbound email: a raw RFC 822 message POSTed by the mail relay with a per-channel bearer secret.

The message becomes one MessageReceived; each attachment's bytes travel as EmailAttachmentReceived (to media,
inside the cluster) and the message references them with MediaPart(source="email_attachment")."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from parley_common.channels import AnyChannel, EmailChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    ContentPart,
    Customer,
    EmailAttachmentReceived,
    EmailHeaders,
    MediaKind,
    MediaPart,
    TextPart,
)
from parley_ingest.domain.model import (
    Batch,
    MalformedPayload,
    Normalised,
    RequestContext,
    envelope_fields,
    message_event,
)
from parley_ingest.domain.providers.email_html import safe_html
from parley_ingest.domain.signatures import bearer_matches

_TAG = re.compile(r"<[^>]+>")
# Limits checked on the raw bytes before parsing. The parser checks every line against the boundary of every
# enclosing multipart: its work grows with lines * nesting (800 levels kept it busy 7-8 s, 3,000 overflowed the
# stack; 2,000 attachments took 7 s; 2 million short lines take 3 s even unnested). Every count below is an upper
# bound of what the parser would see, so an email within them parses in a few seconds at most.
MAX_MIME_CONTAINERS = 50  # multipart/* and message/* parts in all: the nesting cannot be deeper
MAX_MIME_PARTS = 500  # boundary delimiter lines: at least one per part
MAX_LINE_CHECKS = 12_000_000  # lines * (containers + 4): ~4 s of parsing; a 25 MiB base64 email needs ~2.5 M
_CONTAINER = re.compile(rb"content-type:\s*(?:multipart|message)/")  # on lower-cased bytes: 8x faster than re.I

_MEDIA_KINDS = {"image": MediaKind.IMAGE, "audio": MediaKind.AUDIO, "video": MediaKind.VIDEO}
_RAW_HEADERS = ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                "Auto-Submitted", "Return-Path", "Authentication-Results", "Precedence")


class EmailPlugin:
    channel_type: ChannelType = ChannelType.EMAIL
    content_types: tuple[str, ...] = ("message/rfc822", "application/octet-stream")
    handshake: bool = False

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, EmailChannel)
        return any(bearer_matches(secret, headers.get("authorization")) for secret in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        check_mime_limits(body)
        message = BytesParser(policy=policy.default).parsebytes(body)
        assert isinstance(message, EmailMessage)
        sender = _sender(message)
        message_id = str(message["Message-ID"] or "").strip() or f"sha256:{hashlib.sha256(body).hexdigest()}"
        attachments = _attachments(message, ctx, sender[0], message_id)
        batch = Batch(events=[Normalised(event, "attachment", event.attachment_id) for event, _ in attachments])
        batch.events.append(message_event(
            ctx,
            external_user_id=sender[0],
            customer=Customer(email=sender[0], profile_name=sender[1]),
            provider_message_id=message_id,
            provider_timestamp=_sent_at(message) or ctx.received_at,
            parts=(*_body(message), *(part for _, part in attachments)),
            raw={"headers": {name: str(message[name]) for name in _RAW_HEADERS if message[name] is not None},
                 "defects": [type(defect).__name__ for defect in message.defects][:20]},
            email=_headers(message, message_id),
        ))
        return batch


def check_mime_limits(body: bytes) -> None:
    """Raises MalformedPayload (413) when the email may nest deeper or hold more parts than ingest parses."""
    containers = len(_CONTAINER.findall(body.lower()))
    if containers > MAX_MIME_CONTAINERS:
        raise MalformedPayload("email_too_deep", f"more than {MAX_MIME_CONTAINERS} multipart or message parts "
                                                 "(nested or not)", status=413)
    # The parser ends a line at CR, LF or CRLF; a delimiter line starts with "--".
    delimiters = body.count(b"\n--") + body.count(b"\r--") + body.startswith(b"--")
    if delimiters > MAX_MIME_PARTS:
        raise MalformedPayload("email_too_many_parts", f"more than {MAX_MIME_PARTS} MIME parts", status=413)
    lines = body.count(b"\n") + body.count(b"\r") - body.count(b"\r\n") + 1
    if lines * (containers + 4) > MAX_LINE_CHECKS:
        raise MalformedPayload("email_too_many_lines", f"{lines} lines in {containers} nested parts: more than "
                                                        "ingest parses", status=413)


def _sender(message: EmailMessage) -> tuple[str, str | None]:
    header: Any = message["From"]
    addresses = getattr(header, "addresses", ()) if header is not None else ()
    address = next((a for a in addresses if "@" in a.addr_spec), None)
    if address is None:
        raise MalformedPayload("unrecognised_payload", "the email has no valid From address")
    return address.addr_spec.lower(), address.display_name or None


def _addresses(header: Any) -> tuple[str, ...]:
    return tuple(a.addr_spec.lower() for a in getattr(header, "addresses", ()) if a.addr_spec) if header else ()


def _headers(message: EmailMessage, message_id: str) -> EmailHeaders:
    in_reply_to = str(message["In-Reply-To"] or "").strip() or None
    return EmailHeaders(
        subject=str(message["Subject"]) if message["Subject"] is not None else None,
        message_id=message_id, in_reply_to=in_reply_to,
        references=tuple(str(message["References"] or "").split()),
        to=_addresses(message["To"]), cc=_addresses(message["Cc"]), automatic=automatic_reason(message),
    )


_MACHINE_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def automatic_reason(message: EmailMessage) -> str | None:
    """Why a mail comes from a machine (RFC 3834 Auto-Submitted, a bounce's null sender, a delivery status
    report, Precedence, the common auto-responder headers), or None for a person's mail (reference §5.2)."""
    submitted = str(message["Auto-Submitted"] or "").strip().lower().split(";")[0]
    if submitted and submitted != "no":
        return submitted
    if str(message["Return-Path"] or "").strip() == "<>":
        return "null_sender"
    if message.get_content_type() == "multipart/report":
        return "delivery_report"
    precedence = str(message["Precedence"] or "").strip().lower()
    if precedence in _MACHINE_PRECEDENCE:
        return f"precedence_{precedence}"
    if message["X-Autoreply"] is not None or message["X-Autorespond"] is not None:
        return "auto-replied"
    return None


def _sent_at(message: EmailMessage) -> datetime | None:
    date: Any = message["Date"]
    value = getattr(date, "datetime", None) if date is not None else None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeDecodeError):  # unknown or lying charset
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return str(content).replace("\r\n", "\n")


def _body(message: EmailMessage) -> tuple[ContentPart, ...]:
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    html_text = safe_html(_text_of(rich)) if isinstance(rich, EmailMessage) else None
    if isinstance(plain, EmailMessage):
        text = _text_of(plain)
    elif html_text is not None:  # read from the safe HTML: no script or style text in it
        text = " ".join(html.unescape(_TAG.sub(" ", html_text)).split())
    else:
        return ()
    return (TextPart(text=text, html=html_text),)


def _is_body(part: EmailMessage, message: EmailMessage) -> bool:
    return part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment" and any(
        part is message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")
    )


def _attachments(message: EmailMessage, ctx: RequestContext, customer: str,
                 message_id: str) -> list[tuple[EmailAttachmentReceived, MediaPart]]:
    """Every leaf that is not the chosen plain/html body, inline cid: images included."""
    found: list[tuple[EmailAttachmentReceived, MediaPart]] = []
    digest = hashlib.sha256(f"{ctx.tenant_id}|{ctx.channel_id}|{message_id}".encode()).hexdigest()[:24]
    for part in message.walk():
        if part.is_multipart() or not isinstance(part, EmailMessage) or _is_body(part, message):
            continue
        data = part.get_payload(decode=True)
        data = data if isinstance(data, bytes) else part.as_bytes()  # an attached message/rfc822
        attachment_id = f"email-{digest}-{len(found)}"
        mime_type = part.get_content_type()
        event = EmailAttachmentReceived(
            **envelope_fields(ctx, "attachment", attachment_id, customer),
            provider_message_id=message_id, attachment_id=attachment_id,
            file_name=part.get_filename(), declared_mime_type=mime_type,
            content_base64=base64.b64encode(data).decode(),
        )
        media = MediaPart(
            media_kind=_MEDIA_KINDS.get(part.get_content_maintype(), MediaKind.FILE), source="email_attachment",
            reference=attachment_id, attachment_id=attachment_id, mime_type=mime_type,
            file_name=part.get_filename(), size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        )
        found.append((event, media))
    return found
