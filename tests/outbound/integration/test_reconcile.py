"""A message left `sending` by a crash (provider called, outcome never recorded) is failed as outcome-unknown
when the service starts, and never sent again — also when a newer release stored it (a rollback)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from asgi_lifespan import LifespanManager
from outbound_fakes import FakeProvider
from outbound_helpers import TENANT, read_topic

from parley_common.channels import Channels
from parley_common.events.outbound import OutboundText, Sender, SendMessage
from parley_common.settings import InfraSettings
from parley_common.topics import OUTBOUND_MESSAGES
from parley_outbound.adapters.messages_repo import MessageRepository
from parley_outbound.app import create_app
from parley_outbound.domain.status import State
from parley_outbound.handlers.updates import message_doc
from parley_outbound.settings import OutboundSettings


async def test_sending_left_by_a_crash_is_failed_at_start_and_never_resent(
        kafka_topics: InfraSettings, channels: Channels, mongo: Any, redis: Any, fake_provider: FakeProvider) -> None:
    settings = OutboundSettings(infra=kafka_topics, stuck_after_seconds=0.01)
    application = create_app(settings, channels=channels)
    repository = MessageRepository(mongo[kafka_topics.database_name("outbound")])
    command = SendMessage(occurred_at=datetime.now(UTC), tenant_id=TENANT, correlation_id="c-r", channel_id="tg-bot",
                          external_user_id="tg-reconcile", message_id="stuck-1", channel_type="telegram",
                          sender=Sender(kind="bot", bot_id="b"), content=OutboundText(text="x"))
    await repository.insert(message_doc(command, State.SENDING, datetime.now(UTC) - timedelta(minutes=5), {}))
    # one written by a newer release, read again after a rollback: fields this version does not know are ignored
    newer = message_doc(command.model_copy(update={"message_id": "stuck-2"}), State.SENDING,
                        datetime.now(UTC) - timedelta(minutes=5), {})
    newer["command"] |= {"priority": "high", "content": {**newer["command"]["content"], "preview_url": True}}
    await repository.insert(newer | {"route": {"lane": "fast"}})
    async with LifespanManager(application, startup_timeout=90, shutdown_timeout=60):
        for message_id in ("stuck-1", "stuck-2"):
            for _ in range(200):
                doc = await repository.get(TENANT, message_id)
                if doc is not None and doc["state"] != "sending":
                    break
                await asyncio.sleep(0.05)
            assert doc is not None and (doc["state"], doc["reason"]) == ("failed", "send_outcome_unknown")
        failed = await read_topic(kafka_topics, OUTBOUND_MESSAGES, lambda seen: len(seen) == 2,
                                  lambda event: event.status == "failed")  # both told to the router
        assert sorted(event.message_id for event in failed) == ["stuck-1", "stuck-2"]
    assert fake_provider.bodies_for("tg-reconcile") == []
