"""Bots on the router (docs/bots.md): a channel's default bot and a rule's bot get new conversations; a bot that
does not answer in time hands the conversation to its fallback team; an `integration` token acts for its bot
(`sub` = the bot's id) on the conversations that bot holds, and on nothing else (its live stream:
tests/router/unit/test_live_hub.py and tests/e2e/test_bot.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from known_channels import TEST_CHANNELS
from prometheus_client import REGISTRY

from parley_common.events.outbound import OutboundMessageUpdated, OutboundText, Sender
from parley_router.handlers.events_in import OutboundHandler
from parley_router.handlers.inbound import InboundHandler

from .conftest import T0, Router, inbound

BOT = ["integration"]


async def customer_writes(router: Router, user: str, text: str = "hi", channel: str = "wa-bot",
                          seconds: float = 0) -> dict[str, Any]:
    at = T0 + timedelta(seconds=seconds)
    await InboundHandler(router.engine, TEST_CHANNELS).handle(
        inbound(user=user, text=text, channel=channel, message_id=f"m-{user}-{seconds}", at=at))
    listed = await router.ok("GET", "/v1/conversations", params={"limit": 200})
    return next(item for item in listed["items"] if item["external_user_id"] == user)


async def bot_replies(router: Router, conv: dict[str, Any], bot: str, seconds: float) -> None:
    at = T0 + timedelta(seconds=seconds)
    await OutboundHandler(router.engine).handle(OutboundMessageUpdated(
        occurred_at=at, tenant_id="acme", correlation_id="c", channel_id=conv["channel_id"],
        external_user_id=conv["external_user_id"], message_id=f"out-{seconds}", channel_type="whatsapp",
        status="sent", sender=Sender(kind="bot", bot_id=bot), content=OutboundText(text="hello"), status_at=at))


async def test_the_channels_default_bot_takes_what_no_rule_routes(router: Router) -> None:
    conv = await customer_writes(router, "u1")
    assert (conv["status"], conv["assignee"], conv["team_id"]) == (
        "bot", {"kind": "bot", "id": "welcome-bot"}, "care")
    assert conv["bot_reply_due"] == (T0 + timedelta(seconds=30)).isoformat()
    other = await customer_writes(router, "u2", channel="wa-1")  # a channel without a bot: the default team
    assert (other["status"], other["team_id"]) == ("queued", "default")


async def test_a_rules_bot_wins_over_the_channels_with_its_own_timeout_and_team(router: Router) -> None:
    await router.ok("PUT", "/v1/routing", json={"rules": [
        {"id": "prices", "target_kind": "bot", "target_id": "faq-bot", "keywords_any": ["price"],
         "bot_timeout_seconds": 10, "fallback_team": "sales"}]})
    not_a_bot = await router.call("PUT", "/v1/routing", json={"rules": [
        {"id": "r", "target_kind": "team", "target_id": "sales", "fallback_team": "care"}]})
    assert (not_a_bot.status_code, not_a_bot.json()["error"]["code"]) == (422, "validation_failed")
    conv = await customer_writes(router, "u1", "what is the price?")
    assert (conv["assignee"], conv["team_id"], conv["bot_timeout_seconds"]) == (
        {"kind": "bot", "id": "faq-bot"}, "sales", 10)
    assert conv["bot_reply_due"] == (T0 + timedelta(seconds=10)).isoformat()


async def test_a_bot_that_does_not_answer_in_time_hands_over_to_its_fallback_team(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/care", json={"strategy": "round_robin"})
    await router.agent("ann", ["care"])
    answered = await customer_writes(router, "u1")
    silent = await customer_writes(router, "u2")
    await bot_replies(router, answered, "welcome-bot", seconds=5)  # in time: its clock stops
    router.clock.set(T0 + timedelta(seconds=29))
    assert await router.engine.sweep() == 0
    fallbacks = {"tenant": "acme", "bot": "welcome-bot"}
    before = REGISTRY.get_sample_value("parley_router_bot_fallbacks_total", fallbacks) or 0
    router.clock.set(T0 + timedelta(seconds=31))
    assert await router.engine.sweep() == 1
    assert REGISTRY.get_sample_value("parley_router_bot_fallbacks_total", fallbacks) == before + 1
    moved = await router.ok("GET", f"/v1/conversations/{silent['id']}")
    assert (moved["status"], moved["assignee"], moved["bot_reply_due"]) == (
        "assigned", {"kind": "agent", "id": "ann"}, None)  # queued for care, then offered to its agent
    timeline = (await router.ok("GET", f"/v1/conversations/{silent['id']}/timeline"))["items"]
    handover = next(entry for entry in timeline if entry.get("change") == "transferred")
    assert (handover["actor"], handover["comment"]) == ("system", "bot welcome-bot did not answer within 30 s")
    kept = await router.ok("GET", f"/v1/conversations/{answered['id']}")
    assert (kept["status"], kept["bot_reply_due"]) == ("bot", None)
    again = await customer_writes(router, "u1", "and now?", seconds=40)  # the customer's next message: a new clock
    assert again["bot_reply_due"] == (T0 + timedelta(seconds=70)).isoformat()


async def test_a_bot_token_acts_on_its_own_conversations_only(router: Router) -> None:
    await router.ok("PUT", "/v1/teams/care", json={"strategy": "manual"})
    await router.agent("ann", ["care"])
    mine = (await customer_writes(router, "u1"))["id"]
    queued = (await customer_writes(router, "u2", channel="wa-1"))["id"]
    base = f"/v1/conversations/{mine}"

    async def as_bot(method: str, path: str, bot: str = "welcome-bot", **kwargs: Any) -> tuple[int, Any]:
        response = await router.call(method, path, login=bot, roles=BOT, **kwargs)
        body = response.json()
        return response.status_code, body.get("error", {}).get("code") if response.status_code >= 400 else body

    assert (await as_bot("GET", base))[1]["id"] == mine
    assert (await as_bot("GET", f"{base}/timeline"))[1]["items"][0]["text"] == "hi"
    assert (await as_bot("POST", f"{base}/notes", json={"text": "asked about a refund"}))[0] == 201
    # nothing else: another bot, a conversation no bot holds, another tenant's, and every other route
    assert await as_bot("GET", base, bot="other-bot") == (403, "not_bots_conversation")
    assert await as_bot("POST", f"/v1/conversations/{queued}/close", json={}) == (403, "not_bots_conversation")
    assert await as_bot("GET", "/v1/conversations/nope") == (404, "conversation_not_found")
    for method, path, body in (("GET", "/v1/conversations", None), ("GET", "/v1/conversations/counts", None),
                               ("POST", f"{base}/take", None), ("POST", f"{base}/priority", {"priority": 1}),
                               ("POST", f"{base}/snooze", {"until": "2027-01-01T00:00:00Z"}),
                               ("GET", "/v1/agents", None), ("PUT", "/v1/routing", {"rules": []})):
        assert await as_bot(method, path, json=body) == (403, "forbidden"), path
    # hand-over to a team with a note: the team's agent sees the note, and the bot no longer holds it
    status, handed = await as_bot("POST", f"{base}/transfer",
                                  json={"kind": "team", "id": "care", "comment": "wants a human: refund"})
    assert (status, handed["status"], handed["assignee"]) == (200, "queued", {"kind": "team", "id": "care"})
    timeline = (await router.ok("GET", f"{base}/timeline", login="ann", roles=["agent"]))["items"]
    note = next(entry for entry in timeline if entry["kind"] == "note")
    assert (note["author"], note["author_kind"]) == ("welcome-bot", "bot")
    handover = next(entry for entry in timeline if entry.get("change") == "transferred")
    assert (handover["actor"], handover["comment"]) == ("welcome-bot", "wants a human: refund")
    assert await as_bot("POST", f"{base}/close", json={}) == (403, "not_bots_conversation")


async def test_a_bot_closes_its_conversation(router: Router) -> None:
    conv = (await customer_writes(router, "u1"))["id"]
    response = await router.call("POST", f"/v1/conversations/{conv}/close", login="welcome-bot", roles=BOT,
                                 json={"note": "answered by the FAQ"})
    assert (response.status_code, response.json()["status"], response.json()["closing_note"]) == (
        200, "closed", "answered by the FAQ")


async def test_a_bot_hands_over_to_an_agent_directly_or_to_another_bot(router: Router) -> None:
    await router.agent("ann", ["care"])
    first, second = (await customer_writes(router, "u1"))["id"], (await customer_writes(router, "u2"))["id"]
    to_agent = await router.call("POST", f"/v1/conversations/{first}/transfer", login="welcome-bot", roles=BOT,
                                 json={"kind": "agent", "id": "ann", "comment": "VIP, asked for Ann"})
    assert (to_agent.status_code, to_agent.json()["status"], to_agent.json()["assignee"]) == (
        200, "assigned", {"kind": "agent", "id": "ann"})
    to_bot = await router.call("POST", f"/v1/conversations/{second}/transfer", login="welcome-bot", roles=BOT,
                               json={"kind": "bot", "id": "billing-bot", "comment": "a billing question"})
    assert to_bot.json()["assignee"] == {"kind": "bot", "id": "billing-bot"}
    taken_over = await router.call("GET", f"/v1/conversations/{second}/timeline", login="billing-bot", roles=BOT)
    assert taken_over.status_code == 200  # now the other bot's to read and act on
