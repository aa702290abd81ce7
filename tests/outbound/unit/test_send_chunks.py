"""A consumer batch is split into chunks handled at once; a conversation never spans two chunks (its order)."""

from __future__ import annotations

from datetime import UTC, datetime

from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_outbound.handlers.send_batches import _chunks


def command(user: str, message_id: str) -> SendMessage:
    return SendMessage(occurred_at=datetime.now(UTC), tenant_id="acme", correlation_id="c", channel_id="tg-bot",
                       external_user_id=user, message_id=message_id, channel_type="telegram",
                       sender=Sender(kind="bot", bot_id="b"), content=OutboundText(text="x"))


def test_chunks_keep_conversations_whole_and_in_order() -> None:
    batch = [command(f"u{n % 3}", f"m{n}") for n in range(9)]
    chunks = _chunks(batch, 4)
    assert [[c.message_id for c in chunk] for chunk in chunks] == [["m0", "m3", "m6"], ["m1", "m4", "m7"],
                                                                     ["m2", "m5", "m8"]]


def test_small_conversations_share_a_chunk_and_a_long_one_is_not_split() -> None:
    batch = [command("a", "a1"), command("b", "b1"), *(command("long", f"l{n}") for n in range(5)), command("c", "c1")]
    chunks = _chunks(batch, 3)
    assert [[c.message_id for c in chunk] for chunk in chunks] == [["a1", "b1"], ["l0", "l1", "l2", "l3", "l4"],
                                                                     ["c1"]]
