"""The card through HTTP on real MongoDB and Kafka: create, patch, labels, fields, block, comments, merge."""

from __future__ import annotations

from contacts_helpers import MANAGER, auth, read_events, running

from parley_common.events.contacts import (
    ContactBlocked,
    ContactCommented,
    ContactCreated,
    ContactLabelled,
    ContactsMerged,
    ContactUnblocked,
    ContactUpdated,
)
from parley_common.settings import InfraSettings

AGENT = auth()


async def test_identities_only_on_a_channel_of_the_callers_tenant(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        for channel_id in ("wa-globex", "wa-nowhere"):  # another tenant's channel, and one that does not exist
            refused = await client.post("/v1/contacts", json={"phone": "+44 20 7946 0958", "channel_id": channel_id},
                                        headers=AGENT)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == {"code": "unknown_channel", "details": {"field": "channel_id"},
                                               "message": f"no channel {channel_id!r} in this tenant"}
        assert (await client.get("/v1/contacts/search", params={"phone": "+44"}, headers=AGENT)).json()["items"] == []


async def test_card_lifecycle_publishes_events(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        created = await client.post("/v1/contacts", json={"phone": "+44 20 7946 0958", "display_name": "Zoë",
                                                          "channel_id": "wa-main"}, headers=AGENT)
        assert created.status_code == 201, created.text
        card = created.json()
        cid = card["id"]
        assert card["phones"] == ["+442079460958"]
        assert card["identities"][0]["external_user_id"] == "442079460958"

        patched = await client.patch(f"/v1/contacts/{cid}", json={"display_name": "Zoë Smith", "comment": "VIP",
                                                                   "emails": ["Zoe@Example.com"]}, headers=AGENT)
        assert patched.status_code == 200, patched.text
        assert patched.json()["emails"] == ["zoe@example.com"]
        assert patched.json()["comment"] == "VIP"

        labels = await client.post(f"/v1/contacts/{cid}/labels", json={"add": ["vip", "lead"]}, headers=AGENT)
        assert labels.json()["labels"] == ["vip", "lead"]
        labels = await client.post(f"/v1/contacts/{cid}/labels", json={"remove": ["lead"]}, headers=AGENT)
        assert labels.json()["labels"] == ["vip"]
        vocabulary = await client.get("/v1/contacts/labels", headers=AGENT)
        assert [item["name"] for item in vocabulary.json()] == ["lead", "vip"]

        field = await client.put(f"/v1/contacts/{cid}/fields/order num", json={"type": "text", "value": "23425124"},
                                 headers=AGENT)
        assert field.json()["custom_fields"]["order num"] == {"type": "text", "value": "23425124"}
        fields = await client.get("/v1/contacts/fields", headers=AGENT)
        assert fields.json() == [{"name": "order num", "type": "text"}]

        blocked = await client.post(f"/v1/contacts/{cid}/block", json={"channel_id": "wa-main", "reason": "spam"},
                                    headers=AGENT)
        assert blocked.json()["identities"][0]["blocked"] is True
        forbidden = await client.post(f"/v1/contacts/{cid}/unblock", json={"channel_id": "wa-main"}, headers=AGENT)
        assert forbidden.status_code == 403
        unblocked = await client.post(f"/v1/contacts/{cid}/unblock", json={"channel_id": "wa-main"}, headers=MANAGER)
        assert unblocked.json()["identities"][0]["blocked"] is False

    events = await read_events(kafka_topics, 7)
    # one contact's events share a partition (in order); identity events share the identity's partition
    by_contact = [type(e) for e in events if not isinstance(e, ContactBlocked | ContactUnblocked)]
    assert by_contact == [ContactCreated, ContactUpdated, ContactLabelled, ContactLabelled, ContactUpdated]
    by_identity = [e for e in events if isinstance(e, ContactBlocked | ContactUnblocked)]
    assert [type(e) for e in by_identity] == [ContactBlocked, ContactUnblocked]
    updates = [e for e in events if isinstance(e, ContactUpdated)]
    assert updates[0].changed == {"display_name": "Zoë Smith", "comment": "VIP", "emails": ["zoe@example.com"]}
    assert updates[1].changed == {"custom_fields.order num": "23425124"}
    assert [e.removed for e in events if isinstance(e, ContactLabelled)] == [(), ("lead",)]
    blocked = by_identity[0]
    assert blocked.identity.external_user_id == "442079460958" and blocked.reason == "spam"
    assert blocked.partition_key() == b"acme|wa-main|442079460958" and blocked.blocked_by == "ana"


async def test_bad_input_is_422_with_a_code_and_writes_nothing(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        for phone, code in [("12345", "invalid_phone"), ("+7 912", "invalid_phone"), ("+999 1234567", "invalid_phone")]:
            response = await client.post("/v1/contacts", json={"phone": phone}, headers=AGENT)
            assert response.status_code == 422 and response.json()["error"]["code"] == code, phone
        cid = (await client.post("/v1/contacts", json={"phone": "+14155550123"}, headers=AGENT)).json()["id"]
        cases = [
            ("put", f"/v1/contacts/{cid}/fields/a.b", {"type": "text", "value": "x"}, "invalid_field_name"),
            ("put", f"/v1/contacts/{cid}/fields/$where", {"type": "text", "value": "x"}, "validation_failed"),
            ("put", f"/v1/contacts/{cid}/fields/size", {"type": "color", "value": "x"}, "unknown_field_type"),
            ("put", f"/v1/contacts/{cid}/fields/size", {"type": "number", "value": "x"}, "invalid_field_value"),
            ("post", f"/v1/contacts/{cid}/labels", {"add": ["ok", "x" * 65]}, "label_too_long"),
            ("patch", f"/v1/contacts/{cid}", {"display_name": "New", "phones": ["+1415555", "123"]}, "invalid_phone"),
            ("patch", f"/v1/contacts/{cid}", {"emails": ["not-an-email"]}, "invalid_email"),
            ("post", f"/v1/contacts/{cid}/block", {"channel_id": "nope"}, "unknown_identity"),
            ("post", f"/v1/contacts/{cid}/merge", {"other_contact_id": cid}, "merge_same_contact"),
            ("get", "/v1/contacts/search?phone=abc", None, "invalid_phone_query"),
            ("get", "/v1/contacts/search?cursor=garbage", None, "invalid_cursor"),
            ("get", "/v1/contacts/search?field=x", None, "invalid_field_query"),
        ]
        for method, url, body, code in cases:
            response = await client.request(method, url, json=body, headers=AGENT)
            assert response.status_code == 422, (url, response.text)
            assert response.json()["error"]["code"] == code, (url, response.text)
        await client.put(f"/v1/contacts/{cid}/fields/size", json={"type": "number", "value": 3}, headers=AGENT)
        mismatch = await client.put(f"/v1/contacts/{cid}/fields/size", json={"type": "text", "value": "L"},
                                    headers=AGENT)
        assert mismatch.json()["error"]["code"] == "field_type_mismatch"
        card = (await client.get(f"/v1/contacts/{cid}", headers=AGENT)).json()
        assert card["display_name"] is None and card["labels"] == [] and card["phones"] == ["+14155550123"]
        assert card["custom_fields"] == {"size": {"type": "number", "value": 3.0}}
        missing = await client.get("/v1/contacts/nope", headers=AGENT)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "contact_not_found"


async def test_comments_mentions_and_replies(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        cid = (await client.post("/v1/contacts", json={"phone": "+14155550123"}, headers=AGENT)).json()["id"]
        first = await client.post(f"/v1/contacts/{cid}/comments", json={"text": "@bob can you call? cc @eve."},
                                  headers=AGENT)
        assert first.status_code == 201 and first.json()["mentions"] == ["bob", "eve"]
        reply = await client.post(f"/v1/contacts/{cid}/comments",
                                  json={"text": "done", "reply_to": first.json()["id"]}, headers=auth(login="bob"))
        assert reply.json()["mentions"] == ["ana"] and reply.json()["reply_to"] == first.json()["id"]
        bad = await client.post(f"/v1/contacts/{cid}/comments", json={"text": "x", "reply_to": "nope"}, headers=AGENT)
        assert bad.json()["error"]["code"] == "unknown_comment"
        listed = await client.get(f"/v1/contacts/{cid}/comments", headers=auth(login="carol"))
        assert [c["author"] for c in listed.json()] == ["ana", "bob"]
        # each agent's mentions, newest first, with the contact they are about
        for login, texts in (("bob", ["@bob can you call? cc @eve."]), ("ana", ["done"]), ("carol", [])):
            mine = await client.get("/v1/contacts/mentions", headers=auth(login=login))
            assert mine.status_code == 200 and [m["text"] for m in mine.json()] == texts
        [mention] = (await client.get("/v1/contacts/mentions", headers=auth(login="eve"))).json()
        assert (mention["contact_id"], mention["author"], mention["contact_name"]) == (cid, "ana", "+14155550123")
        # each comment is announced (who wrote it, whom it mentions; not its text) for the mentioned agents' screens
        commented = [e for e in await read_events(kafka_topics, 3) if isinstance(e, ContactCommented)]
        assert [(e.contact_id, e.comment_id, e.author, e.mentions) for e in commented] == [
            (cid, first.json()["id"], "ana", ("bob", "eve")), (cid, reply.json()["id"], "bob", ("ana",))]
        assert "text" not in commented[0].model_dump()


async def test_merge_keeps_history_and_moves_identities(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        one = (await client.post("/v1/contacts", json={"phone": "+14155550123", "channel_id": "wa-main",
                                                       "display_name": "Ana"}, headers=AGENT)).json()["id"]
        two = (await client.post("/v1/contacts", json={"phone": "+14155550199", "channel_id": "viber-1",
                                                       "email": "ana@example.com"}, headers=AGENT)).json()["id"]
        await client.post(f"/v1/contacts/{two}/labels", json={"add": ["vip"]}, headers=AGENT)
        await client.post(f"/v1/contacts/{two}/comments", json={"text": "old note"}, headers=AGENT)
        merged = await client.post(f"/v1/contacts/{one}/merge", json={"other_contact_id": two}, headers=AGENT)
        assert merged.status_code == 200, merged.text
        card = merged.json()
        assert [i["channel_id"] for i in card["identities"]] == ["wa-main", "viber-1"]
        assert card["phones"] == ["+14155550123", "+14155550199"] and card["labels"] == ["vip"]
        assert card["emails"] == ["ana@example.com"] and card["merged_from"] == [two]
        gone = await client.get(f"/v1/contacts/{two}", headers=AGENT)
        assert gone.status_code == 404 and gone.json()["error"] == {
            "code": "contact_merged", "message": "the contact was merged into another", "details": {"merged_into": one}}
        comments = await client.get(f"/v1/contacts/{one}/comments", headers=AGENT)
        assert [c["text"] for c in comments.json()] == ["old note"]
        found = await client.get("/v1/contacts/search", params={"email": "ana@example.com"}, headers=AGENT)
        assert [c["id"] for c in found.json()["items"]] == [one]
        again = await client.post(f"/v1/contacts/{one}/merge", json={"other_contact_id": two}, headers=AGENT)
        assert again.status_code == 404
    events = await read_events(kafka_topics, 5)  # created twice, labelled, commented, merged
    merge = next(e for e in events if isinstance(e, ContactsMerged))
    assert merge.contact_id == one and merge.merged_contact_id == two
    assert {i.channel_id for i in merge.identities} == {"wa-main", "viber-1"}


async def test_openapi_and_asyncapi_documents(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        openapi = (await client.get("/openapi.json")).json()
        asyncapi = (await client.get("/asyncapi.json")).json()
    for path in ("/v1/contacts", "/v1/contacts/search", "/v1/contacts/export", "/v1/contacts/{contact_id}/merge",
                 "/v1/contacts/{contact_id}/block", "/v1/contacts/{contact_id}/fields/{name}"):
        assert path in openapi["paths"], path
    channels = " ".join(asyncapi["channels"])
    assert "parley.contacts.events.v1" in channels and "parley.inbound.messages.v1" in channels


async def test_a_picture_an_agent_set_is_never_fetched(kafka_topics: InfraSettings, mongo: object) -> None:
    async with running(kafka_topics) as (_, client):
        cid = (await client.post("/v1/contacts", json={"phone": "+14155550777"}, headers=AGENT)).json()["id"]
        none = await client.get(f"/v1/contacts/{cid}/avatar", headers=AGENT)
        assert none.status_code == 404 and none.json()["error"]["code"] == "no_avatar"
        # an address inside the deployment: contacts must not fetch it for whoever opens the card
        patched = await client.patch(f"/v1/contacts/{cid}", json={"avatar_url": "http://127.0.0.1:2375/info"},
                                     headers=AGENT)
        assert patched.json()["avatar_url"] == "http://127.0.0.1:2375/info"
        assert patched.json()["avatar_from_platform"] is False
        refused = await client.get(f"/v1/contacts/{cid}/avatar", headers=AGENT)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "no_avatar"
        stranger = await client.get("/v1/contacts/no-such-card/avatar", headers=AGENT)
        assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "contact_not_found"
