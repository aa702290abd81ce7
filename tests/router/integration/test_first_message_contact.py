"""A new customer's conversation names, from the moment it is opened, the card contacts creates from the same first
message (`contact_id_of_first_message`): contacts' announcement of that card then finds it shown and changes nothing
— no second save, no `contact_changed` — while a card that is not the named one (an agent's, one the projection had
not read yet) is shown as before (real database and broker)."""

from __future__ import annotations

from parley_common.ids import contact_id_of_first_message
from parley_router.handlers.contacts_in import ContactsHandler
from parley_router.handlers.inbound import InboundHandler

from .conftest import Router, conversation_of, created, inbound, published_events


async def test_the_card_a_first_message_creates_is_named_at_once_and_its_announcement_changes_nothing(
        router: Router) -> None:
    events = published_events(router)
    first = inbound(user="u1", text="hi", name="Ana Lima", phone="+5511987654321")
    await InboundHandler(router.engine).handle(first)
    opened = await conversation_of(router, "u1")
    named = contact_id_of_first_message(first.event_id)
    assert opened.contact_id == named
    assert ("u1", "opened", "queued") in events and all(change != "contact_changed" for _, change, _ in events)
    published = list(events)

    await ContactsHandler(router.engine)([created(named, "u1", "Ana Lima", ("+5511987654321",))])

    shown = await conversation_of(router, "u1")
    assert (shown.version, shown.contact_id, shown.customer_name) == (opened.version, named, "Ana Lima")
    assert events == published  # nothing saved, nothing announced


async def test_a_card_the_projection_knows_first_is_shown_instead(router: Router) -> None:
    """A customer an agent made a card for: the router's projection knows it, so the conversation opens with it."""
    await ContactsHandler(router.engine)([created("k-agent", "u2", "Bo")])
    first = inbound(user="u2", text="hi", name="Bo")
    await InboundHandler(router.engine).handle(first)
    assert (await conversation_of(router, "u2")).contact_id == "k-agent"


async def test_a_card_announced_after_the_opening_that_is_not_the_named_one_is_shown(router: Router) -> None:
    """The projection behind (an agent's card not read yet): the conversation names its first message's contact,
    which contacts never creates for a customer it knew; the card's own event then shows the real one."""
    first = inbound(user="u3", text="hi", name="Cy")
    await InboundHandler(router.engine).handle(first)
    opened = await conversation_of(router, "u3")
    assert opened.contact_id == contact_id_of_first_message(first.event_id)
    events = published_events(router)

    await ContactsHandler(router.engine)([created("k-earlier", "u3", "Cy Adams")])

    shown = await conversation_of(router, "u3")
    assert (shown.contact_id, shown.customer_name, shown.version) == ("k-earlier", "Cy Adams", opened.version + 1)
    assert events == [("u3", "contact_changed", "queued")]
