"""Timeline entries over the real database: inserted when new, refreshed in place when seen again (also twice in
one batch), dotted fields stored as the nested document an update would make, the first sighting's place kept; a
later status of a message refreshes its entry and moves it on, only forward, in one write."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from parley_common.settings import InfraSettings
from parley_router.adapters.timeline import TimelineRepository
from parley_router.handlers.inbox import decode_entry_cursor, encode_entry_position

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)


async def test_new_entries_are_inserted_and_known_ones_refreshed_without_moving(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    timeline = TimelineRepository(db)
    body = {"message_id": "m1", "statuses.queued": T0}
    assert await timeline.put("acme", "c1", "out:m1", "outbound", T0, body)

    # one batch: a new entry, a known one seen later, and the same new one twice
    results = await asyncio.gather(
        timeline.put("acme", "c1", "out:m2", "outbound", T0, {"message_id": "m2"}),
        timeline.put("acme", "c1", "out:m1", "outbound", LATER, {"message_id": "m1", "statuses.read": LATER}),
        timeline.put("acme", "c1", "out:m3", "outbound", T0, {"message_id": "m3", "text": "first"}),
        timeline.put("acme", "c1", "out:m3", "outbound", LATER, {"message_id": "m3", "text": "again"}),
    )

    assert results == [True, False, True, False]
    m1 = await db["timeline"].find_one({"_id": "c1|out:m1"})
    assert m1["statuses"] == {"queued": T0, "read": LATER}
    assert m1["at"] == T0  # the first sighting's place
    m3 = await db["timeline"].find_one({"_id": "c1|out:m3"})
    assert (m3["text"], m3["at"]) == ("again", T0)


async def test_a_later_status_refreshes_its_entry_and_moves_it_only_forward_in_one_write(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    timeline = TimelineRepository(db)
    assert await timeline.put("acme", "c2", "out:m1", "outbound", T0, {"message_id": "m1", "statuses.queued": T0},
                              created_with={"status": "queued", "status_rank": 0})
    read_at, delivered_at = LATER, LATER + timedelta(seconds=1)

    # read arrives before delivered; then a status of a message never seen (its queued lost): created at it
    assert await timeline.put_status("acme", "c2", "out:m1", read_at, {"message_id": "m1"}, "read", 3, "e-read") == (
        False, (0, T0))
    assert await timeline.put_status("acme", "c2", "out:m1", delivered_at, {"message_id": "m1", "text": "hi"},
                                     "delivered", 2, "e-delivered") == (False, None)
    assert await timeline.put_status("acme", "c2", "out:m2", LATER, {"message_id": "m2"}, "sent", 1, "e-sent") == (
        True, (-1, LATER))
    # the event that moved an entry, delivered again (its handler stopped after this write): the same answer
    assert await timeline.put_status("acme", "c2", "out:m1", read_at, {"message_id": "m1"}, "read", 3, "e-read") == (
        False, (0, T0))
    assert await timeline.put_status("acme", "c2", "out:m2", LATER, {"message_id": "m2"}, "sent", 1, "e-sent") == (
        False, (-1, LATER))

    m1 = await db["timeline"].find_one({"_id": "c2|out:m1"})
    assert (m1["status"], m1["status_rank"], m1["at"], m1["text"]) == ("read", 3, T0, "hi")
    assert m1["statuses"] == {"queued": T0, "read": read_at, "delivered": delivered_at}
    m2 = await db["timeline"].find_one({"_id": "c2|out:m2"})
    assert (m2["status"], m2["statuses"], m2["at"], m2["kind"], m2["rank"]) == (
        "sent", {"sent": LATER}, LATER, "outbound", m1["rank"])


async def test_entries_stored_before_arrival_was_kept_still_sort_among_the_new_ones(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    await db["timeline"].create_index([("conversation_id", 1), ("at", 1), ("entry_id", 1)])  # an older release's
    timeline = TimelineRepository(db)
    for entry_id in ("in:old-b", "in:old-a"):  # stored by an older release: no arrival time
        await timeline.put("acme", "c3", entry_id, "inbound", T0, {"text": entry_id})
    await timeline.put("acme", "c3", "act:1", "activity", T0, {})
    await timeline.put("acme", "c3", "in:z", "inbound", T0, {}, received_at=T0 + timedelta(milliseconds=100))
    await timeline.put("acme", "c3", "in:y", "inbound", T0, {}, received_at=T0 + timedelta(milliseconds=900))
    await timeline.put("acme", "c3", "in:next", "inbound", T0 + timedelta(seconds=1), {}, received_at=T0)
    await timeline.ensure_indexes()

    shown = [entry["entry_id"] for entry in await timeline.entries("acme", "c3")]
    # one second: the older entries by id, then the new ones as they arrived, then activity; the next second after
    assert shown == ["in:old-a", "in:old-b", "in:z", "in:y", "act:1", "in:next"]
    for size in (1, 2, 4):  # pages end on entries with and without an arrival time: none lost, none twice
        paged: list[dict[str, Any]] = []
        while page := await timeline.entries("acme", "c3", size, after=decode_entry_cursor(
                encode_entry_position(paged[-1])) if paged else None):  # the API's cursor
            paged += page
        assert [entry["entry_id"] for entry in paged] == shown, size
    indexes = {tuple(key for key, _ in index["key"]) for index in (await db["timeline"].index_information()).values()}
    assert ("conversation_id", "at", "rank", "received_at", "entry_id") in indexes
    assert ("conversation_id", "at", "entry_id") not in indexes  # the older order's index retired
