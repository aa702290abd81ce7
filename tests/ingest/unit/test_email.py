"""Raw RFC 822 email (reference §5) → MessageReceived + EmailAttachmentReceived per attachment."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from parley_common.events.common import ChannelType
from parley_common.events.inbound import EmailAttachmentReceived, MediaKind, MessageReceived, TextPart
from parley_ingest.domain.model import MalformedPayload
from parley_ingest.domain.providers import PLUGINS


def normalise(kit, raw: bytes):
    return PLUGINS[ChannelType.EMAIL].normalise(kit.channels.get("mail"), raw, kit.context(ChannelType.EMAIL, "mail"))


def test_multipart_email_with_inline_image_and_attachment(kit) -> None:
    batch = normalise(kit, kit.eml("email_with_attachments.eml"))
    *attachments, message = (n.event for n in batch.events)
    assert isinstance(message, MessageReceived)
    assert message.external_user_id == "alice@customer.example"
    assert message.customer.email == "alice@customer.example" and message.customer.profile_name == "Alïce Smith"
    assert message.provider_message_id == "<CAF+abc123@mail.customer.example>"
    assert message.provider_timestamp == datetime(2026, 11, 27, 9, 15, tzinfo=timezone(timedelta(hours=1)))
    assert message.email.subject == "Re: Order #123 \N{EN DASH} status"
    assert message.email.in_reply_to == "<parley.acme.conv1.msg7@mail.acme.example>"
    assert message.email.references == ("<first@mail.customer.example>", "<parley.acme.conv1.msg7@mail.acme.example>")
    assert message.email.to == ("support@acme.example",) and message.email.cc == ("bob@customer.example",)
    text = message.parts[0]
    assert isinstance(text, TextPart)
    assert text.text == "Hello, the parcel arrived damaged \N{EN DASH} see the photo.\n"
    assert "cid:pic1" in text.html

    assert all(isinstance(a, EmailAttachmentReceived) for a in attachments)
    photo, invoice = attachments
    assert (photo.file_name, photo.declared_mime_type) == ("photo.png", "image/png")
    assert (invoice.file_name, invoice.declared_mime_type) == ("façture.pdf", "application/pdf")
    assert base64.b64decode(invoice.content_base64) == b"%PDF-1.4 fake invoice"
    assert invoice.partition_key() == message.partition_key()
    media = message.parts[1:]
    assert [(m.media_kind, m.source, m.attachment_id) for m in media] == [
        (MediaKind.IMAGE, "email_attachment", photo.attachment_id),
        (MediaKind.FILE, "email_attachment", invoice.attachment_id)]
    assert media[1].sha256 == hashlib.sha256(b"%PDF-1.4 fake invoice").hexdigest() and media[1].size_bytes == 21
    assert [n.dedup_kind for n in batch.events] == ["attachment", "attachment", "message"]


def test_html_only_email_without_message_id_or_valid_date(kit) -> None:
    raw = kit.eml("email_html_only.eml")
    [normalised] = normalise(kit, raw).events
    message = normalised.event
    assert message.parts[0].text == "Can I change my address?"
    assert message.provider_message_id == f"sha256:{hashlib.sha256(raw).hexdigest()}"
    assert message.provider_timestamp == datetime(2026, 11, 27, 12, tzinfo=UTC)  # the receive time


@pytest.mark.parametrize("raw", [b"", b"Subject: no sender\n\nhello", b"From: not-an-address\n\nhi"])
def test_an_email_without_a_sender_is_malformed(kit, raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        normalise(kit, raw)


@pytest.mark.parametrize(("headers", "reason"), [
    ("Auto-Submitted: auto-replied\r\n", "auto-replied"),
    ("Auto-Submitted: auto-generated; owner-email=x@y\r\n", "auto-generated"),
    ("Auto-Submitted: no\r\n", None),
    ("Return-Path: <>\r\n", "null_sender"),
    ("Precedence: bulk\r\n", "precedence_bulk"),
    ("X-Autoreply: yes\r\n", "auto-replied"),
    ("Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n", "delivery_report"),
    ("", None),
])
def test_machine_mail_is_marked_automatic(headers: str, reason: str | None) -> None:
    from email import policy
    from email.parser import BytesParser

    from parley_ingest.domain.providers.email import automatic_reason

    raw = f"From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n{headers}\r\nbody\r\n".encode()
    assert automatic_reason(BytesParser(policy=policy.default).parsebytes(raw)) == reason


HOSTILE = ('<html><head><style>body{background:url(https://evil.example/s)}</style><script>steal()</script></head>'
           '<body onload="steal()"><p style="x" onclick="steal()">Hi <b>there</b></p>'
           '<a href="javascript:steal()">click</a> <a href="https://shop.example/o/1">order</a>'
           '<img src="https://track.example/pixel.gif?u=1" alt="logo"><img src="cid:pic1" alt="photo">'
           '<iframe src="https://evil.example"></iframe><form action="https://evil.example"><input name=p></form>'
           '<svg><script>steal()</script></svg><math><mi xlink:href="javascript:steal()">x</mi></math>'
           '<object data="x.swf"></object><meta http-equiv="refresh" content="0;url=https://evil.example">'
           '<!-- <script>steal()</script> --></body></html>')


def test_hostile_html_is_sanitised_before_it_leaves_ingest(kit) -> None:
    raw = ("From: mallory@customer.example\r\nTo: support@acme.example\r\nSubject: Hi\r\n"
           "Content-Type: text/html; charset=utf-8\r\n\r\n" + HOSTILE).encode()
    [normalised] = normalise(kit, raw).events
    [text] = normalised.event.parts
    assert isinstance(text, TextPart) and text.html is not None
    for hostile in ("script", "steal", "onload", "onclick", "style", "javascript:", "iframe", "<form", "<input",
                    "<svg", "<object", "<meta", "track.example", "evil.example", "<!--"):
        assert hostile not in text.html.lower(), hostile
    assert "<b>there</b>" in text.html and 'href="https://shop.example/o/1"' in text.html
    assert 'src="cid:pic1"' in text.html and 'alt="logo"' in text.html  # the carried image kept, the pixel not
    assert 'rel="noopener noreferrer nofollow"' in text.html
    assert text.text == "Hi there click order"  # the text rendering reads the safe HTML: no script text
