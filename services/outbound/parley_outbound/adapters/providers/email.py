"""Email over SMTP (aiosmtplib). Sent "closed": no thread is opened for it (edna)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from parley_common.channel_catalogue import send_size_limit
from parley_common.channels import EmailChannel
from parley_outbound.adapters.media_fetch import FetchedMedia
from parley_outbound.adapters.providers.base import ProviderFailure, SendResult
from parley_outbound.adapters.providers.uploads import ProviderMedia
from parley_outbound.domain.outgoing import Outgoing
from parley_outbound.domain.provider_errors import Outcome


class EmailAdapter:
    def __init__(self, timeout_seconds: float = 10.0, media: ProviderMedia | None = None) -> None:
        self._timeout = timeout_seconds
        self._media = media

    async def send(self, channel: EmailChannel, message: Outgoing) -> SendResult:
        if self._media is not None and message.media_id is not None:
            limit = send_size_limit(channel.type, message.media_kind)
            async with self._media.fetcher.fetch(channel.tenant_id, message.media_id, limit) as fetched:
                mail = build_email(channel, message, fetched)
        else:
            mail = build_email(channel, message)
        recipients = [message.recipient, *message.cc, *message.bcc]  # bcc only in the envelope
        password = channel.smtp_password.get_secret_value() if channel.smtp_password else None
        try:
            await aiosmtplib.send(mail, hostname=channel.smtp_host, port=channel.smtp_port, recipients=recipients,
                                  username=channel.smtp_username, password=password,
                                  start_tls=channel.smtp_starttls, timeout=self._timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ProviderFailure(Outcome(False, "recipient_refused"), "550", type(exc).__name__) from None
        except aiosmtplib.SMTPResponseException as exc:
            outcome = Outcome(exc.code < 500, "smtp_temporary" if exc.code < 500 else "smtp_rejected")
            raise ProviderFailure(outcome, str(exc.code), exc.message) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ProviderFailure(Outcome(True, "provider_unreachable"), "smtp", type(exc).__name__) from None
        return SendResult(str(mail["Message-ID"]))


def build_email(channel: EmailChannel, message: Outgoing, attachment: FetchedMedia | None = None) -> EmailMessage:
    """The mail; a stored attachment becomes a real MIME part (file name, content type), not a link."""
    mail = EmailMessage()
    mail["From"] = channel.address
    mail["To"] = message.recipient
    if message.cc:
        mail["Cc"] = ", ".join(message.cc)
    mail["Subject"] = message.subject or ""
    mail["Message-ID"] = make_msgid(idstring=message.message_id, domain=channel.address.split("@", 1)[1])
    for name, value in message.headers.items():  # In-Reply-To and References of a reply (domain/email_thread.py)
        mail[name] = value
    body = message.text or ""
    if attachment is None and message.media_url:  # no media source configured: the link, as before
        body = f"{body}\n\n{message.media_url}" if body else message.media_url
    mail.set_content(body)
    if attachment is not None:
        maintype, _, subtype = attachment.info.mime_type.partition("/")
        mail.add_attachment(attachment.read(), maintype=maintype, subtype=subtype or "octet-stream",
                            filename=attachment.info.file_name)
    return mail
