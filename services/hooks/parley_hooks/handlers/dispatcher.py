"""The delivery loop: for every active subscription, the first waiting delivery of each key goes out (a later one
for the same key waits until the earlier one is delivered); a failure is retried after an exponential, jittered
back-off; a delivery failing too often in a row pauses its subscription, which is reported on
parley.webhooks.events.v1."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from parley_common.events.webhooks import WebhookSubscriptionPaused
from parley_common.kafka import EventPublisher
from parley_common.tasks import running
from parley_common.topics import WEBHOOKS_EVENTS
from parley_hooks.adapters.sender import Outcome, Sender
from parley_hooks.adapters.store import ACTIVE, PAUSED, DeliveryStore, Doc, SubscriptionStore
from parley_hooks.domain.backoff import RetryPolicy
from parley_hooks.domain.events import CONTENT_TYPE
from parley_hooks.domain.signing import ATTEMPT_HEADER, DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from parley_hooks.metrics import ATTEMPT_SECONDS, ATTEMPTS, PAUSES, outcome_label

log = structlog.get_logger(__name__)
DUE_PER_ROUND = 500
LEASE_MARGIN = timedelta(seconds=30)  # beyond the request timeout: a crashed pod's delivery is taken over after it


class Dispatcher:
    def __init__(self, subscriptions: SubscriptionStore, deliveries: DeliveryStore, sender: Sender,
                 publisher: EventPublisher, now: Callable[[], datetime], retry: RetryPolicy, *,
                 timeout_s: float, concurrency: int, poll_s: float, delivered_log: timedelta) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._sender = sender
        self._publisher = publisher
        self._now = now
        self._retry = retry
        self._lease = timedelta(seconds=timeout_s) + LEASE_MARGIN
        self._slots = asyncio.Semaphore(concurrency)
        self._poll_s = poll_s
        self._delivered_log = delivered_log
        self._timeout_s = timeout_s
        self.wake = asyncio.Event()  # set by new deliveries, finished ones, resumes and replays
        self._looking = contextlib.AsyncExitStack()  # the loop looking for work, while started
        self._busy: set[tuple[str, str]] = set()  # (subscription, key) with a delivery in flight
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._looking.enter_async_context(running(self._run()))

    async def stop(self) -> None:
        """Stop looking for work; let the deliveries in flight finish (each is bounded by the request timeout)."""
        await self._looking.aclose()
        if self._in_flight:
            _, unfinished = await asyncio.wait(self._in_flight, timeout=self._timeout_s + 2)
            for task in unfinished:  # their leases expire and another pod sends them again
                task.cancel()

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self.round()
            except Exception:  # the loop outlives a database hiccup; the next round retries
                log.exception("dispatch_round_failed")
            with contextlib.suppress(TimeoutError):  # retries come due without a wake-up: look again then
                await asyncio.wait_for(self.wake.wait(), self._poll_s)

    async def round(self) -> bool:
        """Start the deliveries that are due and first of their key; a key whose delivery is in flight waits for
        it, other keys do not (a slow receiver answer holds up only its own key). Answers whether any started."""
        active = {subscription["_id"]: subscription for subscription in await self._subscriptions.active()}
        if not active:
            return False
        now = self._now()
        heads: dict[tuple[str, str], Doc] = {}
        for delivery in await self._deliveries.due(list(active), now, DUE_PER_ROUND):
            queue = (delivery["subscription_id"], delivery["key"])
            if queue not in heads or delivery["seq"] < heads[queue]["seq"]:
                heads[queue] = delivery
        started = 0
        for queue, delivery in heads.items():
            if queue in self._busy or await self._deliveries.has_earlier(delivery):
                continue
            self._busy.add(queue)
            task = asyncio.create_task(self._deliver_then_free(queue, active[queue[0]], delivery["_id"]))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            started += 1
        return started > 0

    async def _deliver_then_free(self, queue: tuple[str, str], subscription: Doc, delivery_id: str) -> None:
        try:
            await self._deliver(subscription, delivery_id)
        except Exception:  # the delivery stays pending; its lease lapses and a later round sends it again
            log.exception("delivery_crashed", subscription_id=subscription["_id"])
        finally:
            self._busy.discard(queue)
            self.wake.set()  # its key's next delivery may go now

    async def _deliver(self, subscription: Doc, delivery_id: str) -> None:
        async with self._slots:
            delivery = await self._deliveries.claim(delivery_id, self._now(), self._lease)
            if delivery is None:
                return
            attempt = int(delivery["attempts"]) + 1
            body = str(delivery["body"]).encode()
            now = self._now()
            timestamp = int(now.timestamp())
            keys = [subscription["secret"]]
            if subscription.get("previous_secret") and subscription.get("previous_secret_until", now) > now:
                keys.append(subscription["previous_secret"])  # a secret just changed: receivers may hold either
            headers = {"Content-Type": CONTENT_TYPE, "User-Agent": "parley-hooks/1.0",
                       DELIVERY_HEADER: delivery["_id"], ATTEMPT_HEADER: str(attempt),
                       TIMESTAMP_HEADER: str(timestamp),
                       SIGNATURE_HEADER: ", ".join(signature(key, timestamp, body) for key in keys)}
            outcome = await self._sender.post(subscription["url"], headers, body)
            await self._record(subscription, delivery, attempt, outcome)

    async def _record(self, subscription: Doc, delivery: Doc, attempt: int, outcome: Outcome) -> None:
        now = self._now()
        ATTEMPTS.labels(outcome_label(outcome.error)).inc()
        ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
        entry = {"at": now, "attempt": attempt, "status_code": outcome.status_code, "error": outcome.error,
                 "duration_ms": outcome.duration_ms}
        if outcome.error is None:
            await self._deliveries.record_success(delivery["_id"], now, entry, now + self._delivered_log)
            return
        failures = int(delivery.get("failures", 0)) + 1
        retry_at = now + timedelta(seconds=self._retry.delay(failures, random.random()))  # jitter, no secret
        await self._deliveries.record_failure(delivery["_id"], now, entry, retry_at)
        log.info("delivery_failed", subscription_id=subscription["_id"], error=outcome.error, failures=failures)
        if self._retry.pauses(failures):
            await self.pause(subscription, "delivery_failures", failures, outcome.error)

    async def pause(self, subscription: Doc, reason: str, failures: int, last_error: str | None) -> Doc | None:
        """Active → paused, reported once on parley.webhooks.events.v1; None when it was not active."""
        now = self._now()
        paused = await self._subscriptions.set_status(subscription["_id"], ACTIVE, {
            "status": PAUSED, "paused_at": now, "paused_reason": reason, "last_error": last_error, "updated_at": now})
        if paused is None:
            return None
        pending = await self._deliveries.pending_count(subscription["_id"])
        PAUSES.labels(reason).inc()
        log.warning("subscription_paused", subscription_id=subscription["_id"], reason=reason, pending=pending)
        await self._publisher.publish(WebhookSubscriptionPaused(
            occurred_at=now, tenant_id=paused["tenant_id"], correlation_id=paused["_id"],
            subscription_id=paused["_id"], description=paused.get("description"), paused_at=now, reason=reason,
            failures=failures, last_error=last_error, pending=pending), WEBHOOKS_EVENTS)
        return paused
