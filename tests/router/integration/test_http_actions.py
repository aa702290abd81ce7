"""HTTP actions and inbox queries over the real database and cache (messages fed through the handler)."""

from __future__ import annotations

import pytest

from parley_router.handlers.inbound import InboundHandler

from .conftest import T0, ProcessGone, Router, inbound


async def open_conv(router: Router, user: str = "u1", tenant: str = "acme") -> str:
    await InboundHandler(router.engine).handle(inbound(user=user, tenant=tenant, text=f"hi {user}"))
    listed = await router.ok("GET", "/v1/conversations", tenant=tenant)
    return next(item["id"] for item in listed["items"] if item["external_user_id"] == user)


async def test_new_conversation_goes_to_default_team_queue_and_online_agent_gets_it(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/default", json={"strategy": "round_robin"})
    cid = await open_conv(router)
    conv = await router.ok("GET", f"/v1/conversations/{cid}")
    assert (conv["status"], conv["team_id"], conv["unanswered"]) == ("queued", "default", True)
    await router.agent("ann", ["default"])  # coming online drains the queue
    conv = await router.ok("GET", f"/v1/conversations/{cid}")
    assert (conv["status"], conv["assignee"]) == ("assigned", {"kind": "agent", "id": "ann"})
    assert conv["offer_expires_at"] is not None


async def test_actions_and_their_conflict_codes(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/sales", json={"strategy": "manual"})
    await router.agent("ann", ["sales"])
    cid = await open_conv(router)
    base = f"/v1/conversations/{cid}"
    assert (await router.call("POST", f"{base}/assign", json={"kind": "agent", "id": "ghost"})).json()[
        "error"]["code"] == "unknown_agent"
    await router.ok("PUT", "/v1/teams/empty", json={})
    empty = await router.call("POST", f"{base}/transfer", json={"kind": "team", "id": "empty"})
    assert (empty.status_code, empty.json()["error"]["code"]) == (409, "team_has_no_members")
    moved = await router.ok("POST", f"{base}/transfer", json={"kind": "team", "id": "sales", "comment": "vip"})
    assert (moved["status"], moved["team_id"]) == ("queued", "sales")
    taken = await router.ok("POST", f"{base}/take", login="ann", roles=["agent"])
    assert taken["assignee"]["id"] == "ann"
    assert (await router.ok("POST", f"{base}/priority", json={"priority": 2}))["priority"] == 2
    bad = await router.call("POST", f"{base}/priority", json={"priority": 7})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "validation_failed")  # 0..3 in the schema
    assert not (await router.ok("POST", f"{base}/mark", json={"unanswered": False}))["unanswered"]
    snoozed = await router.ok("POST", f"{base}/snooze", json={"until": "2026-01-06T09:00:00Z"})
    assert snoozed["status"] == "snoozed"
    assert (await router.ok("POST", f"{base}/archive"))["archived"]
    note = await router.call("POST", f"{base}/notes", json={"text": "call back tomorrow"})
    assert note.status_code == 201
    closed = await router.ok("POST", f"{base}/close", json={"note": "solved"})
    assert (closed["status"], closed["closing_note"]) == ("closed", "solved")
    again = await router.call("POST", f"{base}/close", json={})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_closed")
    assert (await router.ok("POST", f"{base}/reopen"))["status"] == "queued"
    timeline = await router.ok("GET", f"{base}/timeline")
    kinds = [entry["kind"] for entry in timeline["items"]]
    assert kinds[0] == "inbound" and "note" in kinds
    changes = [entry.get("change") for entry in timeline["items"] if entry["kind"] == "activity"]
    assert {"transferred", "assigned", "closed", "reopened", "snoozed"} <= set(changes)
    transfer = next(e for e in timeline["items"] if e.get("change") == "transferred")
    assert transfer["comment"] == "vip"


async def test_capacity_refuses_take_over_the_limit(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/sales", json={"strategy": "manual"})
    await router.agent("ann", ["sales"], capacity=1)
    first, second = await open_conv(router, "u1"), await open_conv(router, "u2")
    for cid in (first, second):
        await router.ok("POST", f"/v1/conversations/{cid}/transfer", json={"kind": "team", "id": "sales"})
    await router.ok("POST", f"/v1/conversations/{first}/take", login="ann", roles=["agent"])
    full = await router.call("POST", f"/v1/conversations/{second}/take", login="ann", roles=["agent"])
    assert (full.status_code, full.json()["error"]["code"]) == (409, "agent_at_capacity")
    await router.ok("POST", f"/v1/conversations/{first}/close", json={})
    assert (await router.ok("POST", f"/v1/conversations/{second}/take", login="ann", roles=["agent"]))[
        "assignee"]["id"] == "ann"


async def test_tenant_isolation_and_agent_visibility(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/sales", json={"strategy": "manual"})
    await router.agent("ann", ["sales"])
    await router.agent("bob", ["support"])
    cid = await open_conv(router)
    await router.ok("POST", f"/v1/conversations/{cid}/transfer", json={"kind": "team", "id": "sales"})
    other_tenant = await open_conv(router, "u9", tenant="globex")
    for path in (f"/v1/conversations/{cid}", f"/v1/conversations/{cid}/timeline"):
        assert (await router.call("GET", path, tenant="globex")).status_code == 404
        assert (await router.call("GET", path, login="bob", roles=["agent"])).status_code == 404
        assert (await router.call("GET", path, login="ann", roles=["agent"])).status_code == 200
    for action in ("take", "close", "archive", "reopen"):
        response = await router.call("POST", f"/v1/conversations/{cid}/{action}", tenant="globex", json={})
        assert response.status_code == 404, action
    listed = await router.ok("GET", "/v1/conversations")
    assert [item["id"] for item in listed["items"]] == [cid]
    assert (await router.ok("GET", "/v1/conversations", login="bob", roles=["agent"]))["items"] == []
    assert (await router.ok("GET", "/v1/conversations", tenant="globex"))["items"][0]["id"] == other_tenant
    assert (await router.call("PUT", "/v1/teams/x", login="ann", roles=["agent"], json={})).status_code == 403
    assert (await router.client.get("/v1/conversations")).status_code == 401


async def test_list_filters_counts_pagination_bulk_and_export(router: Router) -> None:
    ids = [await open_conv(router, f"u{i}") for i in range(5)]
    page1 = await router.ok("GET", "/v1/conversations", params={"limit": 2})
    page2 = await router.ok("GET", "/v1/conversations", params={"limit": 2, "cursor": page1["next_cursor"]})
    page3 = await router.ok("GET", "/v1/conversations", params={"limit": 2, "cursor": page2["next_cursor"]})
    seen = [item["id"] for page in (page1, page2, page3) for item in page["items"]]
    assert sorted(seen) == sorted(ids) and page3["next_cursor"] is None
    bulk = await router.ok("POST", "/v1/conversations/bulk", json={"ids": [*ids[:2], "nope"], "action": "close"})
    assert [r["ok"] for r in bulk["results"]] == [True, True, False]
    counts = await router.ok("GET", "/v1/conversations/counts")
    assert (counts["closed"], counts["queued"], counts["unanswered"]) == (2, 3, 3)
    closed = await router.ok("GET", "/v1/conversations", params={"status": "closed"})
    assert sorted(item["id"] for item in closed["items"]) == sorted(ids[:2])
    csv_export = await router.call("GET", "/v1/conversations/export", params={"format": "csv", "status": "queued"})
    assert csv_export.text.splitlines()[0].startswith("id,status") and len(csv_export.text.splitlines()) == 4
    jsonl = await router.call("GET", "/v1/conversations/export", params={"format": "jsonl"})
    assert len(jsonl.text.splitlines()) == 5
    assert (await router.call("GET", "/v1/conversations", params={"cursor": "zzz"})).status_code == 422


async def test_search_by_phone_name_user_id_and_contact_summary(router: Router) -> None:
    from parley_common.events.contacts import ContactCreated, ContactUpdated, Identity
    from parley_router.handlers.contacts_in import ContactsHandler

    handler = InboundHandler(router.engine)
    await handler.handle(inbound(user="u1", text="a", name="Maria Lopez", phone="+34600111222"))
    await handler.handle(inbound(user="u2", text="b", name="John"))
    await handler.handle(inbound(user="u3", text="c"))
    contacts = ContactsHandler(router.engine)
    await contacts([ContactCreated(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id="k3",
                                   identities=(Identity(channel_id="wa-1", external_user_id="u3"),),
                                   display_name="Zed Corp"),
                    ContactUpdated(occurred_at=T0, tenant_id="acme", correlation_id="c", contact_id="k3",
                                   changed={"email": "zed@example.com"})])

    async def found(q: str) -> list[str]:
        items = (await router.ok("GET", "/v1/conversations", params={"q": q}))["items"]
        return sorted(item["external_user_id"] for item in items)

    assert await found("maria") == ["u1"]
    assert await found("+34600111222") == ["u1"]
    assert await found("u2") == ["u2"]
    assert await found("zed corp") == ["u3"]
    assert await found("zed@example") == ["u3"]
    assert await found("nobody") == []


async def test_commands_before_the_conversation_opens_are_retried_then_dead_lettered(router: Router) -> None:
    from datetime import timedelta

    import pytest

    from parley_common.events.conversations import ConversationActionRequested
    from parley_common.records import PermanentFailure
    from parley_router.handlers.events_in import CommandsHandler, ConversationNotYetOpen

    handler = CommandsHandler(router.engine)

    def command(age: timedelta, action: str = "close") -> ConversationActionRequested:
        return ConversationActionRequested(occurred_at=T0 - age, tenant_id="acme", correlation_id="c",
                                           channel_id="wa-1", external_user_id="u1", action=action, actor="ann")

    with pytest.raises(ConversationNotYetOpen):
        await handler.handle(command(timedelta(seconds=5)))
    with pytest.raises(PermanentFailure) as failure:
        await handler.handle(command(timedelta(minutes=10)))
    assert failure.value.reason == "no_open_conversation"
    cid = await open_conv(router)
    await handler.handle(command(timedelta(seconds=1), "assign_to_me"))
    assert (await router.ok("GET", f"/v1/conversations/{cid}"))["assignee"]["id"] == "ann"
    await handler.handle(command(timedelta(seconds=1)))
    with pytest.raises(PermanentFailure) as closed:  # the conversation is closed now: nothing open to act on
        await handler.handle(command(timedelta(seconds=200)))
    assert closed.value.reason == "no_open_conversation"


async def test_a_command_delivered_again_after_its_save_changes_nothing_twice_and_is_not_refused(
        router: Router) -> None:
    """The after-send action was saved and the handler stopped before noting it processed (a failure after the
    save): delivered again, a close finds nothing open and an assignment finds it done — neither waits nor is
    dead-lettered, and the conversation is changed once."""
    from parley_common.events.conversations import ConversationActionRequested
    from parley_router.handlers.events_in import CommandsHandler

    handler = CommandsHandler(router.engine)
    cid = await open_conv(router)
    processed = router.engine.stores.processed
    mark = processed.mark

    async def stopped(*args: object) -> None:
        raise ProcessGone

    for action in ("assign_to_me", "close"):
        command = ConversationActionRequested(occurred_at=T0, tenant_id="acme", correlation_id="c", channel_id="wa-1",
                                              external_user_id="u1", action=action, actor="ann")
        processed.mark = stopped  # type: ignore[method-assign]
        try:
            with pytest.raises(ProcessGone):
                await handler.handle(command)
        finally:
            processed.mark = mark  # type: ignore[method-assign]
        before = await router.ok("GET", f"/v1/conversations/{cid}")
        await handler.handle(command)  # delivered again
        after = await router.ok("GET", f"/v1/conversations/{cid}")
        assert (after["status"], after["assignee"]["id"], after["last_activity_at"]) == (
            before["status"], "ann", before["last_activity_at"])
        assert await processed.seen("commands", str(command.event_id))
    assert after["status"] == "closed"


async def test_reopen_refused_while_the_customer_has_a_newer_open_conversation(router: Router) -> None:
    old = await open_conv(router)
    await router.ok("POST", f"/v1/conversations/{old}/close", json={})
    await InboundHandler(router.engine).handle(inbound(text="new question"))
    refused = await router.call("POST", f"/v1/conversations/{old}/reopen")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "another_conversation_open")


async def test_a_body_field_of_another_json_type_is_refused_not_converted(router: Router) -> None:
    """The OpenAPI document says boolean or integer: 0, 1 and "300" are refused, as schemathesis expects (it found
    `requeue_on_offline: 0` stored as false)."""
    cid = await open_conv(router)
    wrong = [("PUT", "/v1/teams/sales", {"requeue_on_offline": 0}),
             ("PUT", "/v1/teams/sales", {"offer_timeout_seconds": "300"}),
             ("PUT", "/v1/routing", {"rules": [{"id": "r1", "target_kind": "team", "target_id": "sales",
                                                 "sticky": 1}]}),
             ("POST", f"/v1/conversations/{cid}/mark", {"unanswered": 1}),
             ("POST", "/v1/conversations/bulk", {"ids": [cid], "action": "mark", "unanswered": "true"})]
    for method, path, body in wrong:
        refused = await router.call(method, path, json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_failed"), (path, body)
    assert (await router.ok("PUT", "/v1/teams/sales", json={"requeue_on_offline": True}))["requeue_on_offline"]
