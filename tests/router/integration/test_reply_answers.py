"""An agent's reply that left answers the conversation exactly when its entry's status first moves to one that left
(a later status of an old reply must not answer the customer's newer message): also when another save of the
conversation comes between the handler's read and its own, and when the handler stops between the entry's write and
the conversation's and the status is delivered again."""

from __future__ import annotations

import pytest

from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender
from parley_common.ids import ConversationKey
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Conversation
from parley_router.handlers.events_in import OutboundHandler
from parley_router.handlers.inbound import InboundHandler

from .conftest import ProcessGone, Router, conversation_of, inbound, later


def reply(status: str, user: str) -> OutboundMessageUpdated:
    return OutboundMessageUpdated(
        occurred_at=later(2), tenant_id="acme", correlation_id="c", channel_id="wa-1", external_user_id=user,
        message_id="reply-1", channel_type="whatsapp", status=status, sender=Sender(kind="human", login="ann"),
        content=OutboundText(text="On its way"), status_at=later(2))


async def test_a_save_between_the_read_and_the_answer_does_not_lose_the_answer(router: Router) -> None:
    await InboundHandler(router.engine).handle(inbound(user="busy", text="where is it?"))
    handler = OutboundHandler(router.engine)
    await handler.handle(reply("queued", "busy"))
    conversations = router.engine.stores.conversations
    read_for_the_reply = conversations.open_for

    async def read_then_saved_by_another(key: ConversationKey) -> Conversation | None:
        conv = await read_for_the_reply(key)
        assert conv is not None
        await router.engine.change(conv, lambda c: conv_rules.set_priority(c, 3), "priority", "sam")
        return conv

    conversations.open_for = read_then_saved_by_another  # type: ignore[method-assign]
    try:
        await handler.handle(reply("sent", "busy"))
    finally:
        conversations.open_for = read_for_the_reply  # type: ignore[method-assign]

    conv = await conversation_of(router, "busy")
    assert (conv.unanswered, conv.first_response_at, conv.priority) == (False, later(2), 3)
    assert conv.agent == "ann"


async def test_a_status_delivered_again_after_a_stop_between_the_two_writes_answers(router: Router) -> None:
    await InboundHandler(router.engine).handle(inbound(user="stopped", text="hello?"))
    handler = OutboundHandler(router.engine)
    await handler.handle(reply("queued", "stopped"))
    sent = reply("sent", "stopped")
    engine = router.engine
    change = engine.change

    async def stops(*args: object, **kwargs: object) -> None:
        raise ProcessGone

    engine.change = stops  # type: ignore[assignment,method-assign]
    try:
        with pytest.raises(ProcessGone):
            await handler.handle(sent)  # the entry moved to sent, the conversation not saved
    finally:
        engine.change = change  # type: ignore[method-assign]
    assert (await conversation_of(router, "stopped")).unanswered

    await handler.handle(sent)  # the same event, delivered again
    conv = await conversation_of(router, "stopped")
    assert (conv.unanswered, conv.first_response_at, conv.agent) == (False, later(2), "ann")

    # the customer writes again, and the reply's status comes once more (a rebalance before the commit): it
    # answered already, so it answers nothing now; nor does a later status of it
    await InboundHandler(router.engine).handle(inbound(user="stopped", text="and when?", at=later(3)))
    await handler.handle(sent)
    await handler.handle(reply("delivered", "stopped"))
    assert (await conversation_of(router, "stopped")).unanswered
