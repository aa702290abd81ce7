"""Wiring of the hooks service: webhook subscriptions delivering the public topics' events over signed HTTP."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from parley_common.channels import Channels, load_channels_or_exit
from parley_common.clock import Clock, SystemClock
from parley_common.consumer_groups import ConsumerGroup, Reads, consume_group
from parley_common.runtime import Runtime, run_service
from parley_common.service import build_service, declare_published
from parley_common.topics import DEAD_LETTERS, WEBHOOKS_EVENTS
from parley_hooks.adapters.sender import Sender
from parley_hooks.adapters.store import DeliveryStore, SubscriptionStore
from parley_hooks.domain.backoff import RetryPolicy
from parley_hooks.domain.events import PUBLIC_TOPICS, event_types
from parley_hooks.domain.targets import TargetPolicy
from parley_hooks.handlers.dispatcher import Dispatcher
from parley_hooks.handlers.http import subscriptions_router
from parley_hooks.handlers.intake import Intake
from parley_hooks.handlers.subscriptions import SubscriptionService
from parley_hooks.settings import HooksSettings

SERVICE = "hooks"


def create_app(settings: HooksSettings, clock: Clock | None = None, channels: Channels | None = None) -> FastAPI:
    clock = clock or SystemClock()
    channels = channels if channels is not None else load_channels_or_exit(settings.infra.channels_file,
                                                                           "parley-hooks")
    runtime = Runtime(SERVICE, settings.infra, use_mongo=True, use_redis=False)
    namespace = settings.infra.namespace
    declare_published(runtime.broker, namespace, WEBHOOKS_EVENTS, DEAD_LETTERS)
    subscriptions, deliveries = SubscriptionStore(runtime.db), DeliveryStore(runtime.db)
    policy = TargetPolicy(allow_private=settings.allow_private_targets, allow_plain_http=settings.allow_plain_http)
    sender = Sender(policy, settings.request_timeout_seconds)
    dispatcher = Dispatcher(
        subscriptions, deliveries, sender, runtime.publisher, clock.now,
        RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds, settings.pause_after_failures),
        timeout_s=settings.request_timeout_seconds, concurrency=settings.concurrent_deliveries,
        poll_s=settings.poll_seconds, delivered_log=timedelta(days=settings.delivered_log_days))
    # one group over the public topics (until issue 17 one per topic: their offsets are adopted once)
    consume_group(runtime.broker, ConsumerGroup(f"{settings.consumer_group}.events", tuple(
        Reads(topic, Intake(subscriptions, deliveries, topic.base_name, clock.now, dispatcher.wake), whole_batch=True,
              formerly=(f"{settings.consumer_group}.{topic.base_name}",))
        for topic in PUBLIC_TOPICS), max_records=settings.batch_max),
        namespace=namespace, publisher=runtime.publisher, service=SERVICE, channels=channels)
    service = SubscriptionService(subscriptions, deliveries, dispatcher, runtime.publisher, policy,
                                  set(event_types()), settings.max_subscriptions_per_tenant, clock.now,
                                  timedelta(hours=settings.secret_overlap_hours))

    async def ensure_indexes() -> None:
        await subscriptions.ensure_indexes()
        await deliveries.ensure_indexes()

    app = build_service(
        service=SERVICE,
        title="Parley hooks",
        description="webhook subscriptions: the topics' CloudEvents delivered over signed HTTP, in order per "
                    "conversation, retried, with a delivery log and replay",
        infra=settings.infra,
        routers=[subscriptions_router(service)],
        readiness=runtime.readiness(),
        broker=runtime.broker,
        replica_leases=runtime.replica_leases,
        on_startup=[ensure_indexes, dispatcher.start],
        on_shutdown=[dispatcher.stop, sender.close, runtime.close],
    )
    app.state.runtime = runtime
    app.state.dispatcher = dispatcher
    return app


def main() -> None:
    run_service("parley-hooks", HooksSettings, create_app)
