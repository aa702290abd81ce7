"""An agent's reply that left answers the conversation also when another save of it comes between the handler's
read and its own: the status that moved the entry on is not handled twice, so a redelivery could not answer it."""

from __future__ import annotations

from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender
from parley_common.ids import ConversationKey
from parley_router.domain import conversation as conv_rules
from parley_router.domain.conversation import Conversation
from parley_router.handlers.events_in import OutboundHandler
from parley_router.handlers.inbound import InboundHandler

from .conftest import Router, conversation_of, inbound, later


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
