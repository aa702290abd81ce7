"""One WhatsApp customer, one key: phone and business-scoped user id (BSUID), with or without a username, in
whichever order and combination the webhooks bring them, and through number and BSUID changes
(fixtures/whatsapp_identity.json); a username alone links nobody."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from parley_common.events.inbound import MessageReceived
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES, INBOUND_STATUSES

WA = "/webhooks/whatsapp/wa-main"
PHONE, BSUID = "447700900321", "GB.50000000000000000321"


def change(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{
        "field": field,
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": "200000000000002"},
                  **value}}]}]}


async def post(client: Any, kit: Any, name: str, field: str = "messages") -> None:
    body = kit.body(change(field, kit.fixture("whatsapp_identity.json")[name]))
    response = await client.post(WA, content=body, headers=kit.meta_headers(body))
    assert response.status_code == 200, response.text


async def keys(topics: Any) -> dict[str, str]:
    """provider message id → the key it was published under"""
    events = [*await topics.events(INBOUND_MESSAGES), *await topics.events(INBOUND_STATUSES)]
    return {event.provider_message_id: event.external_user_id for event in events}


ORDERS = list(itertools.permutations(["phone_only", "bsuid_and_phone", "bsuid_only"]))


@pytest.mark.parametrize("order", [o for o in ORDERS if set(o[:2]) != {"phone_only", "bsuid_only"}])
async def test_phone_bsuid_and_username_in_any_order_are_one_customer(client, kit, topics, order) -> None:
    for name in order:
        await post(client, kit, name)
    published = await keys(topics)
    assert len(published) == 3
    # the first webhook's key stays the customer's, whatever it was
    assert set(published.values()) == {BSUID if order[0] != "phone_only" else PHONE}


async def test_two_keys_that_a_later_webhook_links_become_one_from_then_on(client, kit, topics) -> None:
    """Phone only, then BSUID only (nothing links them yet: two keys), then both: from then on the older key."""
    for name in ("phone_only", "bsuid_only", "bsuid_and_phone"):
        await post(client, kit, name)
    body = kit.body(change("messages", {"messages": [{
        "from_user_id": BSUID, "id": "wamid.ID-after-link", "timestamp": "1795939999", "type": "text",
        "text": {"body": "again"}}]}))
    assert (await client.post(WA, content=body, headers=kit.meta_headers(body))).status_code == 200
    assert await keys(topics) == {"wamid.ID-phone-only": PHONE, "wamid.ID-bsuid-only": BSUID,
                                  "wamid.ID-both": PHONE, "wamid.ID-after-link": PHONE}


async def test_a_conversation_opened_by_phone_meets_the_customers_bsuid_only_reply(client, kit, topics) -> None:
    """Write-first: our send's status names the phone we wrote to and the customer's BSUID; the reply that
    carries only the BSUID is published under the phone, the key the business's conversation has."""
    await post(client, kit, "status_of_a_send_by_phone")
    await post(client, kit, "bsuid_only")
    assert await keys(topics) == {"wamid.ID-first-send": PHONE, "wamid.ID-bsuid-only": PHONE}


async def test_a_changed_number_and_a_changed_bsuid_keep_the_key(client, kit, topics) -> None:
    await post(client, kit, "bsuid_and_phone")
    await post(client, kit, "changed_number")  # system message: the new phone and BSUID join the old key
    await post(client, kit, "new_number")
    await post(client, kit, "user_id_update", field="user_id_update")  # no event: the new BSUID joins the key
    await post(client, kit, "new_bsuid_only")
    published = await keys(topics)
    assert set(published) == {"wamid.ID-both", "wamid.ID-changed-number", "wamid.ID-new-number",
                              "wamid.ID-new-bsuid"}
    assert set(published.values()) == {BSUID}
    notice = next(e for e in await topics.events(INBOUND_MESSAGES) if isinstance(e, MessageReceived)
                  and e.provider_message_id == "wamid.ID-changed-number")
    assert notice.parts[0].system_kind == "user_changed_number"
    assert await topics.records(DEAD_LETTERS) == []  # user_id_update is handled, not dead-lettered


async def test_a_user_id_update_without_ids_is_a_dead_letter(client, kit, topics) -> None:
    body = kit.body(change("user_id_update", {"user_id_update": [{"user_id": {"previous": BSUID}}]}))
    response = await client.post(WA, content=body, headers=kit.meta_headers(body))
    assert response.status_code == 200 and response.json()["dead_lettered"] == 1


async def test_a_username_someone_else_had_links_nobody(client, kit, topics) -> None:
    await post(client, kit, "bsuid_only")  # username dana.li
    other = {"contacts": [{"profile": {"name": "Another", "username": "dana.li"}, "user_id": "GB.777"}],
             "messages": [{"from_user_id": "GB.777", "id": "wamid.ID-other", "timestamp": "1795939999",
                           "type": "text", "text": {"body": "hello"}}]}
    body = kit.body(change("messages", other))
    assert (await client.post(WA, content=body, headers=kit.meta_headers(body))).status_code == 200
    assert await keys(topics) == {"wamid.ID-bsuid-only": BSUID, "wamid.ID-other": "GB.777"}


async def test_keys_are_resolved_after_redis_forgot_its_scripts(client, kit, topics, redis) -> None:
    """The resolving script runs by its SHA in one pipeline (no SCRIPT EXISTS round trip per webhook); a Redis
    that lost its script cache (restarted, SCRIPT FLUSH) answers NOSCRIPT once and the script is loaded again."""
    await post(client, kit, "phone_only")
    await redis.script_flush()
    await post(client, kit, "bsuid_and_phone")
    assert await keys(topics) == {"wamid.ID-phone-only": PHONE, "wamid.ID-both": PHONE}
