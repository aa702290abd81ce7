"""Outbound's audience projection writes a batch of contacts' events in their order, on the real database. A
contact's creation, when it is the contact's first write of the batch, is inserted rather than upserted: what it
leaves is what the upsert leaves, and a contact stored already (a redelivery, an earlier event about it) keeps
the upsert's meaning."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from sent_commands import writes

from parley_common.settings import InfraSettings
from parley_outbound.adapters.audience_repo import AudienceRepository

TENANT = "acme"
ANA = {"channel_id": "wa-main", "external_user_id": "447700900001"}
ANA_ON_TELEGRAM = {"channel_id": "tg-bot", "external_user_id": "501"}


async def stored(mongo: AsyncMongoClient[Any], database: str, contact_id: str) -> dict[str, Any]:
    doc = await mongo[database]["audience_contacts"].find_one({"_id": f"{TENANT}|{contact_id}"})
    assert doc is not None
    return {name: value for name, value in doc.items() if name not in ("_id", "contact_id")}


async def test_an_inserted_creation_is_the_document_its_upsert_makes(mongo: AsyncMongoClient[Any],
                                                                       infra_settings: InfraSettings) -> None:
    database = infra_settings.database_name("outbound-audience")
    commands = writes()
    counted: AsyncMongoClient[Any] = AsyncMongoClient(infra_settings.mongo_uri, tz_aware=True,
                                                      event_listeners=[commands])
    audience = AudienceRepository(counted[database])
    repeated = ([ANA, ANA_ON_TELEGRAM, ANA], ["+447700900001", "+447700900001"])
    await audience.write([audience.created(TENANT, "inserted", "Ana", *repeated)])
    assert commands.sent == ["insert"]
    await mongo[database]["audience_contacts"].bulk_write([audience.created(TENANT, "upserted", "Ana",
                                                                            *repeated).operation()])
    assert await stored(mongo, database, "inserted") == await stored(mongo, database, "upserted") == {
        "tenant_id": TENANT, "identities": [ANA, ANA_ON_TELEGRAM], "phones": ["+447700900001"], "display_name": "Ana"}

    # delivered again, after a later event: the insert is refused, the upsert keeps what the later event set
    await audience.write([audience.labelled(TENANT, "inserted", ["vip"])])
    await audience.write([audience.created(TENANT, "inserted", None, [ANA]),
                          audience.updated(TENANT, "inserted", "Ana B", {"tier": "gold"})])
    assert await stored(mongo, database, "inserted") == {
        "tenant_id": TENANT, "identities": [ANA, ANA_ON_TELEGRAM], "phones": ["+447700900001"], "display_name": "Ana B",
        "labels": ["vip"], "fields": {"tier": "gold"}}
    assert commands.sent == ["insert", "update", "insert", "update"]  # the creation refused, then upserted in place
    await counted.close()
    await mongo.drop_database(database)


async def test_a_creation_after_the_contacts_first_write_of_the_batch_keeps_its_place(
        mongo: AsyncMongoClient[Any], infra_settings: InfraSettings) -> None:
    database = infra_settings.database_name("outbound-audience")
    audience = AudienceRepository(mongo[database])
    await audience.write([audience.updated(TENANT, "late", "Named first", {}),
                          audience.created(TENANT, "late", "Ana", [ANA]),
                          audience.created(TENANT, "new", None, [ANA_ON_TELEGRAM])])
    assert await stored(mongo, database, "late") == {"tenant_id": TENANT, "display_name": "Ana", "identities": [ANA],
                                                    "phones": []}
    assert await stored(mongo, database, "new") == {"tenant_id": TENANT, "identities": [ANA_ON_TELEGRAM], "phones": []}
    await mongo.drop_database(database)
