"""A customer's message that changes an earlier one instead of adding its own: an edit (the same provider message
id, `edited`), a deletion (Instagram `is_deleted`, `revoked`), a reaction (to any entry, ours included). The entry
changes, the original is kept in its `revisions` for the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from parley_common.events.inbound import MessageReceived, ReactionPart, SystemPart

DELETIONS = frozenset({"message_deleted", "revoked", "message_revoked"})


class RevisionKind(StrEnum):
    EDIT = "edit"
    DELETE = "delete"
    REACTION = "reaction"


@dataclass(frozen=True, slots=True)
class Revision:
    kind: RevisionKind
    target_provider_message_id: str


def revision_of(event: MessageReceived) -> Revision | None:
    """What earlier entry this message changes, if it is a change rather than a message of its own."""
    parts = event.parts
    if len(parts) == 1 and isinstance(parts[0], ReactionPart):
        return Revision(RevisionKind.REACTION, parts[0].target_provider_message_id)
    if parts and all(isinstance(part, SystemPart) and part.system_kind in DELETIONS for part in parts):
        return Revision(RevisionKind.DELETE, event.provider_message_id)
    if event.edited:
        return Revision(RevisionKind.EDIT, event.provider_message_id)
    return None


def revised_fields(kind: RevisionKind, entry: dict[str, Any], text: str, parts: list[dict[str, Any]],
                   at: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry's new fields, and the revision that keeps what it showed before (edits and deletions)."""
    before = {"text": entry.get("text"), "parts": entry.get("parts"), "until": at}
    if kind is RevisionKind.DELETE:
        return {"deleted": True, "deleted_at": at}, before
    return {"text": text, "parts": parts, "edited": True, "edited_at": at}, before


def reaction_fields(event: MessageReceived) -> dict[str, Any]:
    """The customer's reaction on the entry (None once they took it back): one per customer, the latest wins."""
    part = event.parts[0]
    emoji = part.emoji if isinstance(part, ReactionPart) else None
    return {"reactions.customer": {"emoji": emoji, "at": event.provider_timestamp,
                                   "provider_message_id": event.provider_message_id}}
