"""The example bot (examples/faq_bot) on the real servers, through public HTTP APIs and topics only: the rule
`make run BOT=1` seeds gives the WhatsApp channel's new conversations to the bot; the customer writes (a signed
webhook), the bot answers (the fake provider receives it, sender kind bot on the timeline), the customer asks for a
person, the bot hands over with a note, the team's agent gets the offer with that note, accepts and replies; and a
bot that does not answer in time (its rule's 5 s) leaves the conversation to its fallback team. docs/bots.md."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_customer import AGENT, Journey, TelegramJourney
from e2e_desk import Desk
from e2e_journey import NotYet, eventually
from e2e_system import JWT_SECRET, REPO, TELEGRAM, TENANT, WHATSAPP, Service, System
from test_live_stream import Screen, frames_until, read_stream

from parley_common.auth import issue_token
from parley_common.tasks import running

sys.path.insert(0, str(REPO / "deploy" / "local"))
from seed import TEAM, seed_bot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BOT_ID = "faq-bot"


@pytest.fixture(scope="module")
def faq_bot(system: System, infra_endpoints: dict[str, str]) -> Iterator[Service]:
    """The example bot as its own process with an integration token for `faq-bot`; its log joins the services'
    (shown on a failure) and the system's teardown stops it with them."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARLEY_")}
    env.update({"PARLEY_KAFKA_BOOTSTRAP": infra_endpoints["PARLEY_KAFKA_BOOTSTRAP"],
                "PARLEY_NAMESPACE": system.namespace,
                "PARLEY_BOT_TOKEN": issue_token(JWT_SECRET, TENANT, BOT_ID, ["integration"]),
                "PARLEY_BOT_ROUTER_URL": system.url("router"), "PARLEY_BOT_HANDOVER_TEAM": TEAM,
                "PARLEY_LOG_JSON": "true", "PYTHONPATH": str(REPO / "examples" / "faq_bot")})
    bot = Service(BOT_ID, 0, system.tmp / f"{BOT_ID}.log")
    with bot.log.open("wb") as log:
        bot.process = subprocess.Popen([sys.executable, "-m", "faq_bot"], env=env, cwd=REPO, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    system.services[BOT_ID] = bot
    yield bot


async def text_sent(system: System, journey: Journey, index: int) -> str:
    async def probe() -> str:
        sends = system.provider.sends_to(journey.phone)
        if len(sends) <= index:
            raise NotYet(f"{len(sends)} sent: {sends}")
        return str(sends[index]["text"]["body"])

    return await eventually(probe, what=f"message {index + 1} to the customer")


async def test_the_bot_answers_then_hands_over_to_an_agent_who_replies(system: System, faq_bot: Service,
                                                                       http: httpx.AsyncClient) -> None:
    desk = Desk(system, http)
    await desk.team(TEAM, [AGENT])
    manager = issue_token(JWT_SECRET, TENANT, "sam", ["manager"])
    assert seed_bot(system.url("router"), manager, WHATSAPP.id, BOT_ID) == [f"rule {WHATSAPP.id}-to-{BOT_ID}"]
    assert seed_bot(system.url("router"), manager, WHATSAPP.id, BOT_ID) == []  # a re-run changes nothing
    rules = (await desk.ok("GET", "router", "/v1/routing"))["rules"]
    assert [rule["target_kind"] for rule in rules] == ["bot", "team"]  # the bot first, then the team's rule
    await desk.presence(AGENT, "online")
    async with desk.heartbeating():  # alice stays online however slow the machine
        await customer_bot_agent(system, desk, http)


async def customer_bot_agent(system: System, desk: Desk, http: httpx.AsyncClient) -> None:
    journey = Journey(system, http)
    bot_token = {"Authorization": f"Bearer {issue_token(JWT_SECRET, TENANT, BOT_ID, ['integration'])}"}
    bot_screen = Screen()  # the bot's live stream: its conversations only
    async with running(read_stream(http, f"{system.url('router')}/v1/conversations/stream", bot_token, bot_screen)):
        await journey.customer_writes("Hello, what are your opening hours?")
        assert "9:00-18:00" in await text_sent(system, journey, 0)
        [conversation] = await journey.conversations()
        assert (conversation["status"], conversation["assignee"]) == ("bot", {"kind": "bot", "id": BOT_ID})
        answer = await journey.timeline_entry(conversation["id"], lambda e: e["kind"] == "outbound", "the bot's answer")
        assert answer["sender"] == {"kind": "bot", "login": None, "bot_id": BOT_ID}

        await journey.customer_writes("Thanks. Can I talk to an agent about my refund?")
        assert "colleague" in await text_sent(system, journey, 1)
        assert await desk.offered(conversation["id"]) == AGENT
        timeline: list[dict[str, Any]] = (await desk.ok(
            "GET", "router", f"/v1/conversations/{conversation['id']}/timeline", AGENT, "agent"))["items"]
        handover = next(entry for entry in timeline if entry.get("change") == "transferred")
        assert handover["actor"] == BOT_ID
        assert "asked for a person" in handover["comment"] and "my refund" in handover["comment"]
        refused = await http.get(f"{system.url('router')}/v1/conversations/{conversation['id']}", headers=bot_token)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_bots_conversation")

        accepted = await desk.act(AGENT, conversation["id"], "accept")
        assert accepted.status_code == 200, accepted.text
        reply = await journey.agent_replies("Hi, this is Alice: let me look at your refund.")
        assert reply.status_code == 202, reply.text
        assert await text_sent(system, journey, 2) == "Hi, this is Alice: let me look at your refund."
        assert len(system.provider.sends_to(journey.phone)) == 3  # the bot said nothing after the hand-over
        await frames_until(bot_screen, lambda f: f.data.get("change") == "transferred",
                           "the hand-over on the bot's stream")
    changes = [frame.data["change"] for frame in bot_screen.about(conversation["id"])]
    # (connected while the customer's first message travelled: the later ones surely reach it)
    assert "message_appended" in changes and changes[-1] == "transferred", changes  # nothing after it left
    assert not [frame for frame in bot_screen.frames if frame.event == "counts"]


async def test_a_silent_bot_hands_over_to_its_fallback_team_in_time(system: System, http: httpx.AsyncClient) -> None:
    """A bot that is down (nothing runs for `silent-bot`): after the rule's 5 s the team's agent is offered it."""
    desk = Desk(system, http)
    await desk.team(TEAM, [AGENT])
    routing = await desk.ok("GET", "router", "/v1/routing")
    silent = {"id": "telegram-to-silent-bot", "target_kind": "bot", "target_id": "silent-bot",
              "channel_ids": [TELEGRAM.id], "bot_timeout_seconds": 5, "fallback_team": TEAM}
    await desk.ok("PUT", "router", "/v1/routing", json={**routing, "rules": [silent, *routing["rules"]]})
    await desk.presence(AGENT, "online")
    journey = TelegramJourney(system, http)
    message_id, _ = await journey.customer_writes("anyone there?")
    conversation, _ = await journey.open_conversation_with(message_id)
    assert conversation["assignee"] == {"kind": "bot", "id": "silent-bot"}
    assert await desk.offered(conversation["id"]) == AGENT
    moved = await journey.timeline_entry(conversation["id"], lambda e: e.get("change") == "transferred", "fallback")
    assert (moved["actor"], moved["comment"]) == ("system", "bot silent-bot did not answer within 5 s")
