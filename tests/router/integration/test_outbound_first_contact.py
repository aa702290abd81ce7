"""Only an outbound message that left opens or touches a conversation: a queued, refused or failed first message
opens nothing; one that was sent opens the agent's (or a bot's); an e-mail with nothing open starts closed."""

from __future__ import annotations

from typing import Any

import pytest

from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender
from parley_router.handlers.events_in import OutboundHandler

from .conftest import ProcessGone, Router, later, published_events


def message(status: str, user: str, message_id: str, channel: tuple[str, str] = ("wa-1", "whatsapp"),
            sender: Sender | None = None) -> OutboundMessageUpdated:
    return OutboundMessageUpdated(
        occurred_at=later(1), tenant_id="acme", correlation_id="c", channel_id=channel[0], external_user_id=user,
        message_id=message_id, channel_type=channel[1], status=status,
        sender=sender or Sender(kind="human", login="ann"), content=OutboundText(text="hello"), status_at=later(1),
        reason="window_closed" if status == "refused" else None)


async def of_user(router: Router, user: str) -> list[dict[str, Any]]:
    items = (await router.ok("GET", "/v1/conversations", params={"limit": 200}))["items"]
    return [conv for conv in items if conv["external_user_id"] == user]


async def test_what_never_left_opens_nothing_and_what_left_opens_the_senders(router: Router) -> None:
    handler = OutboundHandler(router.engine)
    for status, message_id in (("refused", "r1"), ("failed", "f1"), ("queued", "q1")):
        await handler.handle(message(status, "new-1", message_id))
    assert await of_user(router, "new-1") == []

    await handler.handle(message("sent", "new-1", "q1"))
    [conv] = await of_user(router, "new-1")
    assert (conv["status"], conv["assignee"], conv["unanswered"]) == ("assigned", {"kind": "agent", "id": "ann"},
                                                                      False)
    entries = (await router.ok("GET", f"/v1/conversations/{conv['id']}/timeline"))["items"]
    assert [entry["message_id"] for entry in entries if entry["kind"] == "outbound"] == ["q1"]

    await handler.handle(message("sent", "new-2", "b1", sender=Sender(kind="bot", bot_id="faq")))
    [by_bot] = await of_user(router, "new-2")
    assert (by_bot["status"], by_bot["assignee"]) == ("bot", {"kind": "bot", "id": "faq"})


async def test_an_email_with_nothing_open_starts_closed(router: Router) -> None:
    handler = OutboundHandler(router.engine)
    publisher = router.engine.publisher
    publish_together, closed_ids = publisher.publish_together, set()

    async def noting(events: Any, topic: Any) -> None:
        closed_ids.update(event.event_id for event in events if getattr(event, "change", None) == "closed")
        await publish_together(events, topic)

    publisher.publish_together = noting  # type: ignore[method-assign]
    sent = message("sent", "dana@customer.example", "e1", channel=("mail-1", "email"))
    await handler.handle(sent)
    [conv] = await of_user(router, "dana@customer.example")
    assert (conv["status"], conv["assignee"]) == ("closed", None)
    # delivered again (a batch that came again), and a later status: still the one record, announced once
    await handler.handle(sent)
    await handler.handle(message("delivered", "dana@customer.example", "e1", channel=("mail-1", "email")))
    assert [c["id"] for c in await of_user(router, "dana@customer.example")] == [conv["id"]]
    assert len(closed_ids) == 1
    await handler.handle(message("sent", "dana@customer.example", "e2", channel=("mail-1", "email")))
    assert len(await of_user(router, "dana@customer.example")) == 2  # each one its own closed record


async def test_a_first_message_whose_opening_was_not_announced_announces_it_when_its_status_comes_again(
        router: Router) -> None:
    """The router stopped after storing the conversation a business-first message opened, before publishing
    `opened`: the same status delivered again publishes it (under its one event id), and opens nothing else."""
    handler = OutboundHandler(router.engine)
    sent = message("sent", "new-3", "o1")
    events = published_events(router, stop_at_first=True)
    with pytest.raises(ProcessGone):
        await handler.handle(sent)
    assert events == [("new-3", "stopped", "queued")]  # queued for the agent who wrote
    await handler.handle(sent)
    assert [change for _, change, _ in events[1:]] == ["opened", "message_appended"]  # then the reply answers it
    assert len(await of_user(router, "new-3")) == 1
