"""Routing on contact custom fields kept from parley.contacts.events.v1 (real broker and database), and the
inbox / counts filter by the tenant's company/brand (channel id -> brand from the router settings)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley_common.events.contacts import ContactCreated, ContactsMerged, ContactUpdated, Identity
from parley_common.ids import ConversationKey
from parley_common.settings import InfraSettings
from parley_common.topics import CONTACTS_EVENTS, INBOUND_MESSAGES
from parley_router.handlers.inbound import InboundHandler

from .conftest import T0, Router, eventually, inbound, running_router

VIP_RULE = {"id": "vip", "target_kind": "team", "target_id": "vip", "custom_fields": {"membership": "diamond"}}


def created(contact: str, user: str) -> ContactCreated:
    return ContactCreated(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id=contact,
                          identities=(Identity(channel_id="wa-1", external_user_id=user),))


def updated(contact: str, **changed: Any) -> ContactUpdated:
    return ContactUpdated(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id=contact,
                          changed={f"custom_fields.{k}": v for k, v in changed.items()})


async def field_of(router: Router, user: str, name: str) -> Any:
    contact = await router.engine.stores.directory.contact_of(ConversationKey("acme", "wa-1", user))
    return (contact or {}).get("custom_fields", {}).get(name)


async def test_custom_field_rule_routes_new_conversations_over_kafka(consuming_router: Router) -> None:
    router = consuming_router
    publish = router.engine.publisher.publish
    await router.ok("PUT", "/v1/routing", json={"rules": [VIP_RULE]})
    events = [created("k1", "u1"), updated("k1", membership="diamond"), updated("k1", membership="diamond"),
              created("k2", "u2"), updated("k2", membership="diamond", tier=3.0), updated("k2", membership=None),
              created("k4", "u4"), updated("k4", membership="diamond"), created("k3", "u3")]
    for event in events:  # k1's change is delivered twice: the projection stays the same
        await publish(event, CONTACTS_EVENTS)
    await eventually(lambda: field_of(router, "u4", "membership"))
    await eventually(lambda: _only_tier_left(router))  # k2: set, then membership removed (same partition)
    # k4 folded into k3: the identities of both now lead to k3, which gained k4's field
    both = tuple(Identity(channel_id="wa-1", external_user_id=user) for user in ("u3", "u4"))
    await publish(ContactsMerged(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id="k3",
                                 merged_contact_id="k4", identities=both), CONTACTS_EVENTS)
    await eventually(lambda: field_of(router, "u3", "membership"))
    for user in ("u1", "u2", "u3", "u4"):
        await publish(inbound(user=user, text=f"hi {user}"), INBOUND_MESSAGES)
    items = await eventually(lambda: _all_listed(router, 4))
    teams = {item["external_user_id"]: item["team_id"] for item in items}
    assert teams == {"u1": "vip", "u2": "default", "u3": "vip", "u4": "vip"}


async def _only_tier_left(router: Router) -> bool:
    contact = await router.engine.stores.directory.contact_of(ConversationKey("acme", "wa-1", "u2"))
    return contact is not None and contact.get("custom_fields") == {"tier": 3.0}


async def _all_listed(router: Router, wanted: int) -> list[dict[str, Any]] | None:
    items = (await router.ok("GET", "/v1/conversations"))["items"]
    return items if len(items) == wanted else None


@pytest.fixture
async def branded_router(kafka_topics: InfraSettings, mongo: Any, redis: Any) -> AsyncIterator[Router]:
    brands = {"wa-1": "shoes", "wa-2": "shoes", "tg-1": "bikes"}
    async with running_router(kafka_topics, consume=False, brands=brands) as running:
        yield running


async def test_inbox_list_counts_and_export_filter_by_brand(branded_router: Router) -> None:
    router = branded_router
    handler = InboundHandler(router.engine)
    for user, channel in (("a", "wa-1"), ("b", "wa-2"), ("c", "tg-1"), ("d", "unbranded")):
        await handler.handle(inbound(user=user, channel=channel, text=f"hi {user}"))

    async def users(**params: Any) -> list[str]:
        items = (await router.ok("GET", "/v1/conversations", params=params))["items"]
        return sorted(item["external_user_id"] for item in items)

    assert await users(brand="shoes") == ["a", "b"]
    assert await users(brand="bikes") == ["c"]
    assert await users(brand="shoes", channel_id="wa-2") == ["b"]
    assert await users(brand="bikes", channel_id="wa-2") == []
    assert await users(brand="unknown") == []
    assert await users() == ["a", "b", "c", "d"]
    counts = await router.ok("GET", "/v1/conversations/counts", params={"brand": "shoes"})
    assert (counts["queued"], counts["unanswered"]) == (2, 2)
    assert (await router.ok("GET", "/v1/conversations/counts"))["queued"] == 4
    export = await router.call("GET", "/v1/conversations/export", params={"format": "jsonl", "brand": "bikes"})
    assert len(export.text.splitlines()) == 1
