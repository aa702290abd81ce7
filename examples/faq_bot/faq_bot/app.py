"""The FAQ bot as a FastStream app (docs/bots.md, the contract it follows):

- subscribes to `parley.conversations.events.v1` (its own consumer group) and keeps the events whose assignee is
  this bot: `opened` and `message_appended` naming a customer message (`entry_id` `in:…`);
- reads that message from the router's timeline (`GET /v1/conversations/{id}/timeline`, its integration token);
- replies with a `SendMessage` (sender kind `bot`) on `parley.outbound.requests.v1`, keyed by the conversation;
- follows `parley.outbound.messages.v1` for its own replies: one refused because outbound had not heard of the
  customer's message yet (`template_required` moments after it) is sent again, a few times;
- hands over with `POST /v1/conversations/{id}/transfer` to its team with a note when the customer asks for a
  person, then says so (or that nobody can be reached, when the router refuses the hand-over).

Configuration (environment): PARLEY_KAFKA_BOOTSTRAP (and the PARLEY_KAFKA_* security settings every service
reads: parley_common.connections), PARLEY_NAMESPACE, PARLEY_BOT_TOKEN (required: an `integration` JWT whose `sub`
is the bot's id), PARLEY_BOT_ROUTER_URL, PARLEY_BOT_HANDOVER_TEAM."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import structlog
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.usecase import DefaultPublisher

from faq_bot import brain
from parley_common.cloudevents import headers_for
from parley_common.connections import Connections, kafka_client_options, kafka_security
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.events.common import ChannelType, SenderKind
from parley_common.events.conversations import Assignee, ConversationChanged
from parley_common.events.outbound import OutboundMessageUpdated, OutboundStatus, OutboundText, Sender, SendMessage
from parley_common.group_offsets import adopt_former_offsets
from parley_common.ids import new_id
from parley_common.kafka import EventPublisher, make_broker
from parley_common.logging import configure_logging
from parley_common.topics import CONVERSATIONS_EVENTS, OUTBOUND_MESSAGES, OUTBOUND_REQUESTS

log = structlog.get_logger("faq_bot")
SERVICE = "faq-bot"
CUSTOMER_MESSAGE = ("opened", "message_appended")
# Older events are history (a new consumer group starts at the topic's beginning): the router has handed those
# conversations to their team long ago.
MAX_EVENT_AGE = timedelta(minutes=10)
# The router publishes a message's event just before it writes its timeline entry.
ENTRY_WAITS, ENTRY_WAIT_SECONDS = 20, 0.1
RESENDS, RESEND_WITHIN = 5, timedelta(seconds=30)
# What outbound answers a reply while it has not heard of the customer's message yet (its window projection
# follows parley.inbound.messages.v1 on its own): worth sending again moments later.
NOT_HEARD_YET = frozenset({"template_required", "no_approved_template", "customer_never_wrote"})


class MovedOn(Exception):
    """The conversation is no longer this bot's (handed over, closed): nothing to do."""


class Refused(Exception):
    """The router refused a call for good (e.g. 409 team_has_no_members, or a token it does not accept)."""


@dataclass(frozen=True)
class BotConfig:
    bot_id: str
    token: str
    router_url: str
    handover_team: str
    kafka: Connections
    namespace: str

    @classmethod
    def from_env(cls) -> BotConfig:
        token = os.environ.get("PARLEY_BOT_TOKEN", "").strip()
        if not token:
            sys.exit("faq-bot: PARLEY_BOT_TOKEN is required (an integration token whose sub is the bot's id)")
        # the router checks the signature; the bot only needs to know which id its token gives it
        claims = jwt.decode(token, options={"verify_signature": False})
        return cls(bot_id=str(claims["sub"]), token=token,
                   router_url=os.environ.get("PARLEY_BOT_ROUTER_URL", "http://127.0.0.1:8003"),
                   handover_team=os.environ.get("PARLEY_BOT_HANDOVER_TEAM", "support"),
                   kafka=Connections(),
                   namespace=os.environ.get("PARLEY_NAMESPACE", ""))


@dataclass
class FaqBot:
    config: BotConfig
    requests: DefaultPublisher  # parley.outbound.requests.v1
    router: httpx.AsyncClient
    pending: dict[str, tuple[SendMessage, int]] = field(default_factory=dict)  # reply id → (command, resends)

    @property
    def me(self) -> Assignee:
        return Assignee(kind="bot", id=self.config.bot_id)

    async def on_conversation(self, event: ConversationChanged) -> None:
        if event.assignee != self.me or event.change not in CUSTOMER_MESSAGE:
            return
        if not (event.entry_id or "").startswith("in:") or _age(event.changed_at) > MAX_EVENT_AGE \
                or not event.channel_type:
            return
        try:
            entries = await self._timeline_with(event.conversation_id, event.entry_id or "")
            text = next(entry.get("text") or "" for entry in entries if entry.get("entry_id") == event.entry_id)
            reply = brain.reply_to(text, first=event.change == "opened")
            if reply.hand_over:  # first: the goodbye is sent only once a person will really take over
                said = [entry.get("text") or "" for entry in entries if entry.get("kind") == "inbound"]
                if not await self._hand_over(event.conversation_id, brain.hand_over_note(said)):
                    reply = brain.Reply(brain.NO_HAND_OVER, "hand_over_refused")
        except (MovedOn, Refused):
            return
        log.info("bot_reply", conversation_id=event.conversation_id, intent=reply.intent)
        await self._send(event, reply.text, idempotency_key=f"{self.config.bot_id}:{event.entry_id}")

    async def on_outbound(self, event: OutboundMessageUpdated) -> None:
        """A reply of ours refused because outbound had not yet heard of the customer's message goes again."""
        if event.message_id not in self.pending or event.status is OutboundStatus.QUEUED:
            return
        if event.status is not OutboundStatus.REFUSED:  # it left (or failed for good): nothing more to do
            self.pending.pop(event.message_id)
            return
        command, resends = self.pending.pop(event.message_id)
        if event.reason not in NOT_HEARD_YET or resends >= RESENDS or _age(command.occurred_at) > RESEND_WITHIN:
            log.warning("bot_reply_refused", message_id=event.message_id, reason=event.reason)
            return
        await asyncio.sleep(0.5 * (resends + 1))
        again = command.model_copy(update={"message_id": new_id(), "occurred_at": datetime.now(UTC),
                                           "idempotency_key": f"{command.idempotency_key}:{resends + 1}"})
        await self._publish(again, resends + 1)

    async def _timeline_with(self, conversation_id: str, entry_id: str) -> list[dict[str, Any]]:
        for _ in range(ENTRY_WAITS):
            response = await self.router.get(f"/v1/conversations/{conversation_id}/timeline")
            _check(response, conversation_id)
            entries: list[dict[str, Any]] = response.json()["items"]
            if any(entry.get("entry_id") == entry_id for entry in entries):
                return entries
            await asyncio.sleep(ENTRY_WAIT_SECONDS)
        raise RuntimeError(f"entry {entry_id} not on the timeline yet")  # not committed: delivered again

    async def _send(self, event: ConversationChanged, text: str, idempotency_key: str) -> None:
        command = SendMessage(
            occurred_at=datetime.now(UTC), tenant_id=event.tenant_id, correlation_id=event.correlation_id,
            channel_id=event.channel_id, external_user_id=event.external_user_id, message_id=new_id(),
            idempotency_key=idempotency_key, channel_type=ChannelType(event.channel_type or ""),
            sender=Sender(kind=SenderKind.BOT, bot_id=self.config.bot_id), content=OutboundText(text=text))
        await self._publish(command, 0)

    async def _publish(self, command: SendMessage, resends: int) -> None:
        # only young replies are ever sent again: the older ones' outcome no longer matters (bounded memory)
        for message_id in [m for m, (sent, _) in self.pending.items() if _age(sent.occurred_at) > RESEND_WITHIN]:
            del self.pending[message_id]
        self.pending[command.message_id] = (command, resends)
        # keyed by the conversation (one customer's replies in order), CloudEvents headers like every producer
        await self.requests.publish(command.model_dump_json().encode(), key=command.partition_key(),
                                    headers=headers_for(command))

    async def _hand_over(self, conversation_id: str, note: str) -> bool:
        """True once handed over; False when the router refuses it (the bot keeps the conversation)."""
        response = await self.router.post(f"/v1/conversations/{conversation_id}/transfer", json={
            "kind": "team", "id": self.config.handover_team, "comment": note})
        try:
            _check(response, conversation_id)
        except Refused:
            return False
        log.info("bot_handed_over", conversation_id=conversation_id, team=self.config.handover_team)
        return True


def _check(response: httpx.Response, conversation_id: str) -> None:
    """MovedOn when the conversation left the bot (403 not_bots_conversation, 404); Refused, logged, for another
    answer that will not change on a retry (409 team_has_no_members, 401 a token the router refuses); a server
    error raises, so the event comes again."""
    if response.status_code < 400:
        return
    if response.status_code < 500:
        code = response.json().get("error", {}).get("code") if response.content else None
        if code in ("not_bots_conversation", "conversation_not_found"):
            raise MovedOn(conversation_id)
        log.warning("bot_call_refused", conversation_id=conversation_id, status=response.status_code, code=code)
        raise Refused(code)
    response.raise_for_status()


def _age(moment: datetime) -> timedelta:
    return datetime.now(UTC) - moment


def create_app(config: BotConfig) -> tuple[FastStream, KafkaBroker]:
    broker = make_broker(config.kafka.kafka_bootstrap, SERVICE,
                         idle_fetch_backoff_ms=config.kafka.kafka_idle_fetch_backoff_ms,
                         security=kafka_security(config.kafka))
    publisher = EventPublisher(broker, config.namespace)
    router = httpx.AsyncClient(base_url=config.router_url, timeout=10.0,
                               headers={"Authorization": f"Bearer {config.token}"})
    requests = broker.publisher(OUTBOUND_REQUESTS.name(config.namespace), title=f"{SERVICE} replies",
                                description="the bot's replies (sender kind bot) to outbound", schema=SendMessage)
    bot = FaqBot(config, requests, router)
    # its own consumer group over both topics, named after the bot: several replicas share the work (until
    # issue 17 one group per topic: their offsets are adopted once before the broker starts)
    consume_group(broker, ConsumerGroup(f"{config.bot_id}.events", tuple(
        Reads(topic, handle, formerly=(f"{config.bot_id}.{topic.base_name}",))
        for topic, handle in ((CONVERSATIONS_EVENTS, bot.on_conversation), (OUTBOUND_MESSAGES, bot.on_outbound)))),
        namespace=config.namespace, publisher=publisher, service=SERVICE, channels=None)
    app = FastStream(broker)

    @app.on_startup
    async def adopt_offsets() -> None:
        await adopt_former_offsets(broker, config.kafka.kafka_bootstrap, **kafka_client_options(config.kafka))

    app.after_shutdown(router.aclose)
    return app, broker


def main() -> None:
    configure_logging(SERVICE)
    app, _ = create_app(BotConfig.from_env())
    asyncio.run(app.run())
