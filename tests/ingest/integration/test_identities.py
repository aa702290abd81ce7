"""One WhatsApp customer, one key: phone and business-scoped user id (BSUID), with or without a username, in
whichever order and combination the webhooks bring them, and through number and BSUID changes
(fixtures/whatsapp_identity.json); a username alone links nobody. The keys are ingest's own record (MongoDB),
cached in Redis: they outlive a cache wipe, and two webhooks at once agree on one."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from tcp_proxy import TcpProxy

from parley_common.events.inbound import MessageReceived
from parley_common.topics import DEAD_LETTERS, INBOUND_MESSAGES, INBOUND_STATUSES
from parley_ingest.adapters.identity_records import IdentityRecords
from parley_ingest.app import create_app
from parley_ingest.migrate_identities import migrate
from parley_ingest.settings import IngestSettings

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


async def test_keys_are_cached_after_redis_forgot_its_scripts(client, kit, topics, redis) -> None:
    """The caching script runs by its SHA (no SCRIPT EXISTS round trip); a Redis that lost its script cache
    (restarted, SCRIPT FLUSH) answers NOSCRIPT once and the script is loaded again."""
    await post(client, kit, "phone_only")
    await redis.script_flush()
    await post(client, kit, "bsuid_and_phone")
    assert await keys(topics) == {"wamid.ID-phone-only": PHONE, "wamid.ID-both": PHONE}


async def forget_the_cache(redis: Any, infra: Any) -> None:
    """What a Redis restarted empty knows of this deployment: nothing (only this test's keys are deleted: other
    tests share the server)."""
    async for key in redis.scan_iter(match=f"{infra.redis_prefix()}*"):
        await redis.delete(key)


async def test_after_the_cache_forgot_every_identity_a_customer_keeps_their_key(client, kit, topics, redis) -> None:
    """Issue 18: the identities live in ingest's database, Redis only caches them. A customer seen by BSUID and
    phone keeps the BSUID's key after each wipe: by phone alone, through a BSUID change, by the new BSUID alone
    (before, the keys lived only in Redis and each of these started a new customer)."""
    await post(client, kit, "bsuid_and_phone")
    await forget_the_cache(redis, topics.infra)
    await post(client, kit, "phone_only")
    await forget_the_cache(redis, topics.infra)
    await post(client, kit, "user_id_update", field="user_id_update")  # the new BSUID joins the key
    await forget_the_cache(redis, topics.infra)
    await post(client, kit, "new_bsuid_only")
    assert await keys(topics) == {"wamid.ID-both": BSUID, "wamid.ID-phone-only": BSUID, "wamid.ID-new-bsuid": BSUID}


async def test_after_the_database_was_restored_from_an_older_backup_the_cache_restores_what_it_knows(
        client, kit, topics, redis, mongo) -> None:
    """The identities written since the backup are gone from the database but not from the cache: a BSUID change
    (its new identifier must be recorded) keeps the key the cache names and writes it back, so the customer keeps
    it once the cache forgot too."""
    await post(client, kit, "bsuid_and_phone")
    await mongo[topics.infra.database_name("ingest")]["identities"].delete_many({})  # the restore
    await post(client, kit, "user_id_update", field="user_id_update")
    await forget_the_cache(redis, topics.infra)
    await post(client, kit, "new_bsuid_only")
    await post(client, kit, "phone_only")
    assert await keys(topics) == {"wamid.ID-both": BSUID, "wamid.ID-new-bsuid": BSUID, "wamid.ID-phone-only": BSUID}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def customer(n: int) -> tuple[str, str]:
    return f"4477009{n:05d}", f"GB.7{n:016d}"


async def test_two_webhooks_at_once_for_a_new_customer_give_one_key(client, kit, topics) -> None:
    """Our send's status (preferring the phone) and the customer's message (preferring the BSUID) arrive at once
    for someone nobody knew: both look the customer up, find nothing and propose different keys; the database's
    unique identifiers let one proposal win and the other webhook adopt it. Eight customers, so the race is
    run, not hoped for."""
    async def webhook(value: dict[str, Any]) -> None:
        body = kit.body(change("messages", value))
        response = await client.post(WA, content=body, headers=kit.meta_headers(body))
        assert response.status_code == 200, response.text

    customers = [customer(n) for n in range(8)]
    await asyncio.gather(*(request for n, (phone, bsuid) in enumerate(customers) for request in (
        webhook({"statuses": [{"id": f"wamid.send-{n}", "status": "sent", "timestamp": "1795939100",
                               "recipient_id": phone, "recipient_user_id": bsuid}]}),
        webhook({"contacts": [{"profile": {"name": "Someone"}, "wa_id": phone, "user_id": bsuid}],
                 "messages": [{"from": phone, "from_user_id": bsuid, "id": f"wamid.reply-{n}",
                               "timestamp": "1795939101", "type": "text", "text": {"body": "hi"}}]}))))
    published = await keys(topics)
    for n, (phone, bsuid) in enumerate(customers):
        assert published[f"wamid.send-{n}"] == published[f"wamid.reply-{n}"] in (phone, bsuid), n


async def test_two_replicas_at_once_for_new_customers_give_one_key_each(kafka_topics, redis, mongo, kit,
                                                                          topics) -> None:
    """Two ingest replicas share nothing but the database and the cache: each inserts the identifiers of a
    customer nobody knew without reading first, proposing its own key (the status the phone, the message the
    BSUID), so their inserts race on the identifiers' unique ids; the replica whose insert failed reads and takes
    the older key (had each won one identifier, both would lower the other to it): every customer ends on one."""
    def app() -> Any:
        return create_app(IngestSettings(infra=kafka_topics, publish_timeout_seconds=10), channels=kit.channels)

    async with LifespanManager(app()) as first, LifespanManager(app()) as second, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=first.app), base_url="http://one") as one, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=second.app), base_url="http://two") as two:
        async def webhook(replica: httpx.AsyncClient, value: dict[str, Any]) -> None:
            body = kit.body(change("messages", value))
            response = await replica.post(WA, content=body, headers=kit.meta_headers(body))
            assert response.status_code == 200, response.text

        customers = [customer(100 + n) for n in range(8)]
        await asyncio.gather(*(request for n, (phone, bsuid) in enumerate(customers) for request in (
            webhook(one, {"statuses": [{"id": f"wamid.send-{n}", "status": "sent", "timestamp": "1795939100",
                                        "recipient_id": phone, "recipient_user_id": bsuid}]}),
            webhook(two, {"contacts": [{"profile": {"name": "Someone"}, "wa_id": phone, "user_id": bsuid}],
                          "messages": [{"from": phone, "from_user_id": bsuid, "id": f"wamid.reply-{n}",
                                        "timestamp": "1795939101", "type": "text", "text": {"body": "hi"}}]}))))
    published = await keys(topics)
    for n, (phone, bsuid) in enumerate(customers):
        assert published[f"wamid.send-{n}"] == published[f"wamid.reply-{n}"] in (phone, bsuid), n


@pytest.fixture
async def database_proxy(infra_endpoints: dict[str, str]) -> AsyncIterator[TcpProxy]:
    host, port = infra_endpoints["PARLEY_MONGO_URI"].removeprefix("mongodb://").partition("/")[0].split(":")
    async with TcpProxy(host, int(port)) as proxy:
        yield proxy


async def test_while_the_database_is_away_a_new_identifier_is_answered_503_and_a_known_one_is_not(
        kafka_topics, redis, mongo, kit, topics, database_proxy) -> None:
    """A known identifier costs no database round trip, so it is served while the database is away; one the cache
    does not know is answered 503 `identity_store_unavailable` (the provider retries), never published under a
    guessed key; once the database is back the retry goes through under the customer's key."""
    infra = kafka_topics.model_copy(update={
        "mongo_uri": f"mongodb://127.0.0.1:{database_proxy.port}/?retryWrites=false&directConnection=true"})
    app = create_app(IngestSettings(infra=infra, identity_database_timeout_seconds=1), channels=kit.channels)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest") as http:
        await post(http, kit, "bsuid_and_phone")
        await database_proxy.unplug()
        await post(http, kit, "phone_only")  # known: served from the cache
        body = kit.body(change("user_id_update", kit.fixture("whatsapp_identity.json")["user_id_update"]))
        away = await http.post(WA, content=body, headers=kit.meta_headers(body))  # a new BSUID to record
        assert away.status_code == 503, away.text
        assert away.json()["error"]["code"] == "identity_store_unavailable"
        await database_proxy.plug()
        back = await http.post(WA, content=body, headers=kit.meta_headers(body))
        assert back.status_code == 200, back.text
        await post(http, kit, "new_bsuid_only")
    assert await keys(topics) == {"wamid.ID-both": BSUID, "wamid.ID-phone-only": BSUID,
                                         "wamid.ID-new-bsuid": BSUID}


async def test_the_keys_an_older_version_kept_in_redis_are_migrated_into_the_database(
        client, kit, topics, redis, mongo) -> None:
    """Upgrading: the old version kept the keys only in Redis (`…:id:<sha256>` → key, `…:births`). A customer it
    knew by phone and later linked to a BSUID keeps the phone's key once `migrate_identities` copied them — even
    after the cache is wiped, and with a second run changing nothing. Without the migration the BSUID-only
    message would start a customer of its own (the BSUID's key)."""
    scope = f"{topics.infra.redis_prefix()}ingest:identity:acme:wa-main"
    for identifier in (f"wa:{PHONE}", f"bsuid:{BSUID}"):  # what the old script wrote
        await redis.set(f"{scope}:id:{hashlib.sha256(identifier.encode()).hexdigest()}", PHONE)
    await redis.hset(f"{scope}:births", PHONE, 1)
    records = IdentityRecords(mongo[topics.infra.database_name("ingest")])
    assert await migrate(redis, records, topics.infra.redis_prefix()) == 2
    assert await migrate(redis, records, topics.infra.redis_prefix()) == 2  # again: the same records
    await forget_the_cache(redis, topics.infra)
    await post(client, kit, "bsuid_only")
    assert await keys(topics) == {"wamid.ID-bsuid-only": PHONE}


async def test_a_link_recorded_before_the_broker_failed_still_reaches_the_cache(kafka_topics, client, kit,
                                                                                 topics) -> None:
    """The phone's key and the BSUID's are cached apart; the webhook that links them records the link, then
    Kafka fails (503, nothing published): the cache learns the link anyway, so the customer's next message by
    BSUID alone is published under the older key (the phone's), not under the one the cache held before."""
    await post(client, kit, "phone_only")
    await post(client, kit, "bsuid_only")
    broker_down = kafka_topics.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{closed_port()}"})
    app = create_app(IngestSettings(infra=broker_down, publish_timeout_seconds=2), channels=kit.channels)
    body = kit.body(change("messages", kit.fixture("whatsapp_identity.json")["bsuid_and_phone"]))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest") as unlucky:
        failed = await unlucky.post(WA, content=body, headers=kit.meta_headers(body))
        assert failed.json()["error"]["code"] == "broker_unavailable", failed.text
    again = kit.body(change("messages", {"messages": [{
        "from_user_id": BSUID, "id": "wamid.ID-after-link", "timestamp": "1795939999", "type": "text",
        "text": {"body": "again"}}]}))
    assert (await client.post(WA, content=again, headers=kit.meta_headers(again))).status_code == 200
    assert (await keys(topics))["wamid.ID-after-link"] == PHONE


async def test_a_providers_retry_of_a_published_webhook_is_a_duplicate_without_the_database(
        kafka_topics, redis, mongo, kit, topics, database_proxy) -> None:
    """A retry of events already published is answered from the duplicate check: their customers are not looked
    up again, so the retry is a 200 duplicate even when neither the cache nor the database can name them."""
    infra = kafka_topics.model_copy(update={
        "mongo_uri": f"mongodb://127.0.0.1:{database_proxy.port}/?retryWrites=false&directConnection=true"})
    app = create_app(IngestSettings(infra=infra, identity_database_timeout_seconds=1), channels=kit.channels)
    body = kit.body(change("messages", kit.fixture("whatsapp_identity.json")["bsuid_and_phone"]))
    async with LifespanManager(app) as manager, httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest") as http:
        assert (await http.post(WA, content=body, headers=kit.meta_headers(body))).json()["published"] == 1
        await database_proxy.unplug()
        async for key in redis.scan_iter(match=f"{kafka_topics.redis_prefix()}ingest:identity:*"):
            await redis.delete(key)
        retried = await http.post(WA, content=body, headers=kit.meta_headers(body))
        assert retried.status_code == 200, retried.text
        assert retried.json()["duplicates"] == 1
        await database_proxy.plug()  # the app's shutdown closes its database client
