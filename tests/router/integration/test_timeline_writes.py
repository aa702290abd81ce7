"""Timeline entries over the real database: inserted when new, refreshed in place when seen again (also twice in
one batch), dotted fields stored as the nested document an update would make, the first sighting's place kept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from parley_common.settings import InfraSettings
from parley_router.adapters.timeline import TimelineRepository

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


async def test_an_entry_probably_there_is_refreshed_in_one_write_and_created_when_it_was_not(
        mongo: Any, infra_settings: InfraSettings) -> None:
    db = mongo[infra_settings.database_name("router")]
    timeline = TimelineRepository(db)
    assert await timeline.put("acme", "c2", "out:m1", "outbound", T0, {"message_id": "m1", "statuses.queued": T0})

    results = await asyncio.gather(  # a later status of a known message, one of a message never seen, a new one
        timeline.put("acme", "c2", "out:m1", "outbound", LATER, {"message_id": "m1", "statuses.sent": LATER},
                     probably_there=True),
        timeline.put("acme", "c2", "out:m2", "outbound", LATER, {"message_id": "m2", "statuses.sent": LATER},
                     probably_there=True),
        timeline.put("acme", "c2", "out:m3", "outbound", T0, {"message_id": "m3"}),
    )

    assert results == [False, True, True]
    m1 = await db["timeline"].find_one({"_id": "c2|out:m1"})
    assert (m1["statuses"], m1["at"]) == ({"queued": T0, "sent": LATER}, T0)
    m2 = await db["timeline"].find_one({"_id": "c2|out:m2"})
    assert (m2["statuses"], m2["at"], m2["kind"]) == ({"sent": LATER}, LATER, "outbound")
