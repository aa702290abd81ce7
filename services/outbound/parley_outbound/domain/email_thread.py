"""Replies that thread in the customer's mail client (reference §5.3): `In-Reply-To` the customer's last
Message-ID, `References` the chain up to it, and `Re: <their subject>` when the agent gives no subject."""

from __future__ import annotations

from dataclasses import dataclass

MAX_REFERENCES = 20  # the newest ids of the chain: enough for any client to thread, bounded in size


@dataclass(frozen=True, slots=True)
class EmailThread:
    """The customer's last email on this conversation key."""

    message_id: str
    references: tuple[str, ...] = ()
    subject: str | None = None


def reply_subject(thread: EmailThread | None, subject: str | None) -> str | None:
    if subject or thread is None or not thread.subject:
        return subject
    return thread.subject if thread.subject.lower().startswith("re:") else f"Re: {thread.subject}"


def reply_headers(thread: EmailThread | None) -> dict[str, str]:
    if thread is None:
        return {}
    chain = [*(ref for ref in thread.references if ref != thread.message_id), thread.message_id][-MAX_REFERENCES:]
    return {"In-Reply-To": thread.message_id, "References": " ".join(chain)}
