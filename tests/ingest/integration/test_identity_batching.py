"""The webhooks in flight share the identity store's round trips (issue 17): one `$in` find for all their
lookups and one unordered bulk write for all their records, each webhook still told its own outcome — a
duplicate key fails only the webhook whose identifier it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from sent_commands import SentCommands, names_on

from parley_common.settings import InfraSettings
from parley_common.topics import INBOUND_MESSAGES, INBOUND_STATUSES
from parley_ingest.adapters.cache import SharedCache
from parley_ingest.adapters.identities import IdentityStore
from parley_ingest.adapters.identity_records import IdentityRecords
from parley_ingest.domain.identities import Scoped, ScopedClaim, claim, rank

WA = "/webhooks/whatsapp/wa-main"


@pytest.fixture
async def counted(infra_settings: InfraSettings, mongo: AsyncMongoClient[Any]
                  ) -> AsyncIterator[tuple[IdentityRecords, SentCommands[str]]]:
    commands = names_on("identities")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra_settings.mongo_uri,
                                                                 event_listeners=[commands])
    yield IdentityRecords(client[infra_settings.database_name("ingest")], timeout_seconds=10), commands
    await client.close()  # the `mongo` fixture drops the test's databases


def scoped(n: int) -> Scoped:
    return ("acme", "wa-main", f"wa:4477009{n:05d}")


def scoped_claim(preferred_key: str, *identifiers: str) -> ScopedClaim:
    return ScopedClaim("acme", "wa-main", claim(preferred_key, *identifiers))


async def test_someone_new_is_inserted_without_a_read_and_someone_the_cache_forgot_is_read_after_the_insert(
        counted, redis, infra_settings: InfraSettings) -> None:
    """Issue 17: claims the cache knows nothing of are inserted first (one write, no `find`); an insert that meets
    a stored identifier reads them and decides anew, so a known customer keeps their key — and an identifier the
    insert added under a key born now joins the older key."""
    records, commands = counted
    store = IdentityStore(SharedCache(redis), records, infra_settings.redis_prefix(), cache_ttl_seconds=60,
                          database_timeout_seconds=10)
    first = await store.keys_for([scoped_claim("bsuid-1", "bsuid:bsuid-1", "wa:447700900001")], {})
    assert first.keys == ["bsuid-1"]
    assert commands.sent == ["insert"]

    commands.sent.clear()  # the same customer with a new phone, the cache forgotten: the BSUID is stored already
    again = await store.keys_for([scoped_claim("bsuid-1", "bsuid:bsuid-1", "wa:447700900002")], {})
    assert again.keys == ["bsuid-1"]
    assert commands.sent == ["insert", "find", "update"]  # the new phone's younger key lowered to the BSUID's
    stored = await records.ranks([("acme", "wa-main", f"wa:44770090000{n}") for n in (1, 2)])
    assert set(stored.values()) == {first.ranks[("acme", "wa-main", "bsuid:bsuid-1")]}

    commands.sent.clear()  # what the cache knows is read first, as before
    cached = {("acme", "wa-main", "bsuid:bsuid-1"): first.ranks[("acme", "wa-main", "bsuid:bsuid-1")]}
    linked = await store.keys_for([scoped_claim("bsuid-1", "bsuid:bsuid-1", "wa:447700900003")], cached)
    assert linked.keys == ["bsuid-1"]
    assert commands.sent == ["find", "insert"]


async def test_lookups_and_records_of_concurrent_webhooks_are_one_find_and_one_write(counted) -> None:
    records, commands = counted
    assert await asyncio.gather(*(records.record({scoped(n): rank(1, f"key-{n}")}, {}) for n in range(30))) \
        == [True] * 30
    found = await asyncio.gather(*(records.ranks([scoped(n), scoped(100 + n)]) for n in range(30)))
    assert found == [{scoped(n): rank(1, f"key-{n}")} for n in range(30)]
    assert commands.sent == ["insert", "find"]


async def test_a_duplicate_key_fails_only_the_recording_whose_identifier_it_was(counted) -> None:
    records, commands = counted
    assert await records.record({scoped(0): rank(1, "first")}, {})
    outcomes = await asyncio.gather(
        records.record({scoped(1): rank(2, "one")}, {}),
        records.record({scoped(2): rank(2, "two"), scoped(0): rank(2, "late")}, {}),  # 0 is someone else's
        records.record({scoped(3): rank(2, "three")}, {}),
        records.record({scoped(3): rank(3, "three-again")}, {}),  # the same new customer, in the same write
        records.record({scoped(4): rank(2, "four")}, {}))
    assert outcomes == [True, False, True, False, True]
    assert commands.sent == ["insert", "insert"]
    stored = await records.ranks([scoped(n) for n in range(5)])
    # the first writer of each identifier won; the losers' other identifiers were written (and read again)
    assert stored == {scoped(0): rank(1, "first"), scoped(1): rank(2, "one"), scoped(2): rank(2, "two"),
                      scoped(3): rank(2, "three"), scoped(4): rank(2, "four")}


async def test_a_link_lowered_no_further_reads_again_and_the_others_in_its_write_do_not(counted) -> None:
    records, _ = counted
    assert await records.record({scoped(0): rank(3, "older"), scoped(1): rank(9, "young")}, {})
    outcomes = await asyncio.gather(
        records.record({}, {scoped(0): rank(5, "old")}),  # another writer linked 0 further already
        records.record({scoped(2): rank(9, "new")}, {}),
        records.record({}, {scoped(1): rank(4, "other")}))
    assert outcomes[:2] == [False, True]  # (the third may be asked to read again too: a bulk result is a sum)
    assert await records.ranks([scoped(0), scoped(1), scoped(2)]) == {
        scoped(0): rank(3, "older"), scoped(1): rank(4, "other"), scoped(2): rank(9, "new")}


def customer(n: int) -> tuple[str, str]:
    return f"4477008{n:05d}", f"GB.8{n:016d}"


async def test_concurrent_webhooks_of_new_and_colliding_customers_end_on_one_key_each(client, kit, topics,
                                                                                       redis) -> None:
    """Twenty new customers at once, each by two webhooks that propose different keys (our send's status by
    phone, the customer's message by BSUID), and ten customers each written to once: their lookups and writes
    shared, every customer ends on one key. Their cache reads (duplicate checks and cached identities) are
    shared too: far fewer `MGET`s than webhooks (counted by the server)."""
    async def webhook(value: dict[str, Any]) -> None:
        body = kit.body({"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{
            "field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {
                "display_phone_number": "15550001111", "phone_number_id": "200000000000002"}, **value}}]}]})
        response = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert response.status_code == 200, response.text

    def status(n: int, phone: str, bsuid: str) -> dict[str, Any]:
        return {"statuses": [{"id": f"wamid.send-{n}", "status": "sent", "timestamp": "1795939100",
                              "recipient_id": phone, "recipient_user_id": bsuid}]}

    def message(n: int, phone: str, bsuid: str) -> dict[str, Any]:
        return {"contacts": [{"profile": {"name": "Someone"}, "wa_id": phone, "user_id": bsuid}],
                "messages": [{"from": phone, "from_user_id": bsuid, "id": f"wamid.reply-{n}",
                              "timestamp": "1795939101", "type": "text", "text": {"body": "hi"}}]}

    customers = [customer(n) for n in range(30)]
    before = await mgets(redis)
    await asyncio.gather(*(webhook(status(n, *ids)) for n, ids in enumerate(customers[:20])),
                         *(webhook(message(n, *ids)) for n, ids in enumerate(customers)))
    assert await mgets(redis) - before <= 10  # 1 when they arrive in one turn, as here (one per webhook before)
    published = await topics_keys(topics)
    for n, (phone, bsuid) in enumerate(customers[:20]):
        assert published[f"wamid.send-{n}"] == published[f"wamid.reply-{n}"] in (phone, bsuid), n
    assert [published[f"wamid.reply-{n}"] for n in range(20, 30)] == [bsuid for _, bsuid in customers[20:]]


async def topics_keys(topics: Any) -> dict[str, str]:
    events = [*await topics.events(INBOUND_MESSAGES), *await topics.events(INBOUND_STATUSES)]
    return {event.provider_message_id: event.external_user_id for event in events}


async def mgets(redis: Any) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0))


async def test_a_webhook_reads_its_duplicate_check_and_its_customers_keys_in_one_mget(client, kit, redis) -> None:
    def body(n: int) -> bytes:
        phone, bsuid = customer(99)
        return kit.body({"object": "whatsapp_business_account", "entry": [{"id": "100000000000001", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "200000000000002"},
                "contacts": [{"profile": {"name": "Someone"}, "wa_id": phone, "user_id": bsuid}],
                "messages": [{"from": phone, "from_user_id": bsuid, "id": f"wamid.one-read-{n}",
                              "timestamp": "1795939101", "type": "text", "text": {"body": "hi"}}]}}]}]})

    for n in range(2):  # someone new, then someone the cache knows
        before = await mgets(redis)
        response = await client.post(WA, content=body(n), headers=kit.meta_headers(body(n)))
        assert response.status_code == 200, response.text
        assert await mgets(redis) - before == 1, n
