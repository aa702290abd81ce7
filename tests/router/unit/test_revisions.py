"""Which customer messages change an earlier entry instead of adding one, and what the entry becomes."""

from __future__ import annotations

from datetime import UTC, datetime

from parley_common.events.common import ChannelType
from parley_common.events.inbound import Customer, MessageReceived, ReactionPart, SystemPart, TextPart
from parley_router.domain.revisions import RevisionKind, reaction_fields, revised_fields, revision_of

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def event(*parts: object, edited: bool = False, mid: str = "m-1") -> MessageReceived:
    return MessageReceived(occurred_at=AT, tenant_id="t", correlation_id="c", channel_id="ig",
                           external_user_id="u", channel_type=ChannelType.INSTAGRAM, customer=Customer(),
                           provider_message_id=mid, provider_timestamp=AT, received_at=AT, parts=parts,
                           edited=edited)


def test_edits_deletions_and_reactions_are_revisions_of_their_target() -> None:
    assert revision_of(event(TextPart(text="hi"))) is None
    edit = revision_of(event(TextPart(text="hello"), edited=True))
    assert edit is not None and (edit.kind, edit.target_provider_message_id) == (RevisionKind.EDIT, "m-1")
    deletion = revision_of(event(SystemPart(system_kind="message_deleted")))
    assert deletion is not None and deletion.kind is RevisionKind.DELETE
    reaction = revision_of(event(ReactionPart(target_provider_message_id="ours-1", emoji="x"), mid="r-1"))
    assert reaction is not None and (reaction.kind, reaction.target_provider_message_id) == (
        RevisionKind.REACTION, "ours-1")
    assert revision_of(event(SystemPart(system_kind="unsubscribed"))) is None


def test_the_original_is_kept_and_a_deleted_entry_keeps_its_text() -> None:
    entry = {"text": "hi", "parts": [{"kind": "text", "text": "hi"}]}
    fields, before = revised_fields(RevisionKind.EDIT, entry, "hello", [{"kind": "text", "text": "hello"}], AT)
    assert fields == {"text": "hello", "parts": [{"kind": "text", "text": "hello"}], "edited": True,
                      "edited_at": AT}
    assert before == {"text": "hi", "parts": entry["parts"], "until": AT}
    fields, before = revised_fields(RevisionKind.DELETE, entry, "", [], AT)
    assert fields == {"deleted": True, "deleted_at": AT} and before["text"] == "hi"
    removed = reaction_fields(event(ReactionPart(target_provider_message_id="ours-1"), mid="r-2"))
    assert removed["reactions.customer"]["emoji"] is None
