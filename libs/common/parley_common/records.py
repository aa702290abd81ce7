"""One record of a consumed topic: parse it with the topic's model, check the channels it names belong to its
tenant, hand it to the handler — or dead-letter it with the original bytes and the reason, so a partition never
stalls on a poison record; a handler's other errors are tried again as parley_common.retries decides."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka.message import KafkaMessage
from pydantic import ValidationError

from parley_common import metrics, retries, tracing
from parley_common.channels import ChannelNotOfTenant, Channels
from parley_common.cloudevents import correlation_id_from
from parley_common.events.dlq import DeadLetter, original_record_fields
from parley_common.kafka import EventPublisher
from parley_common.logging import bind_correlation_id
from parley_common.topics import DEAD_LETTERS, Topic

log = structlog.get_logger(__name__)


class PermanentFailure(Exception):
    """The message can never be processed (bad reference, rule violation): dead-letter it and move on.

    Any other exception is treated as transient: the offset is not committed and the message comes again."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def channels_named(event: Any) -> list[str]:
    """Every channel an event names: its own (`channel_id`) and its identities' (contacts' events)."""
    named = [event.channel_id] if isinstance(getattr(event, "channel_id", None), str) else []
    identities = list(getattr(event, "identities", ()) or ())
    if getattr(event, "identity", None) is not None:
        identities.append(event.identity)
    return named + [identity.channel_id for identity in identities]


def check_channels(channels: Channels | None, event: Any) -> None:
    """PermanentFailure when the event names a channel that is unknown or belongs to another tenant. None: a
    subscriber without the channel file (a bot, examples/faq_bot) trusts the producers' check."""
    tenant_id = getattr(event, "tenant_id", None)
    if tenant_id is None or channels is None:
        return
    for channel_id in channels_named(event):
        try:
            channels.of_tenant(tenant_id, channel_id)
        except ChannelNotOfTenant as mismatch:
            raise PermanentFailure(mismatch.reason, str(mismatch)) from None


async def handle_record(
    message: KafkaMessage,
    topic: Topic,
    handle: Callable[[Any], Awaitable[None]],
    publisher: EventPublisher,
    service: str,
    channels: Channels | None,
    *,
    batched: bool = False,
) -> None:
    """Parse one record of `topic`, check the channels it names belong to its tenant, and hand it to `handle`;
    unparseable records, a channel of another tenant (or none at all) and PermanentFailure go to the dead-letter
    topic (with the original bytes and the reason) so the partition never stalls on a poison message and a
    mismatched record changes nothing. Any other error is tried again as parley_common.retries decides: without
    limit during an outage of the database, cache or broker, else ATTEMPTS times before it is dead-lettered."""
    raw_headers = _headers_of(message)
    bind_correlation_id(correlation_id_from(raw_headers))
    # A record of a batch handled as a whole is traced by the batch's span (`consumer_groups`).
    traced = contextlib.nullcontext() if batched else tracing.processing(topic.name(publisher.namespace),
                                                                         raw_headers, message.raw_message)
    with traced:
        await _parse_and_handle(message, topic, handle, publisher, service, channels, batched, raw_headers)


async def _parse_and_handle(message: KafkaMessage, topic: Topic, handle: Callable[[Any], Awaitable[None]],
                            publisher: EventPublisher, service: str, channels: Channels | None, batched: bool,
                            raw_headers: dict[str, str]) -> None:
    try:
        event = topic.parse(message.body)
    except ValidationError as exc:
        tracing.dead_lettered("invalid_event")
        await dead_letter(publisher, message, topic, service, "invalid_event", _summary(exc), raw_headers)
        metrics.count_record(service, topic.base_name, "dead_lettered")
        return
    await _handle_parsed(message, event, topic, handle, publisher, service, channels, raw_headers, batched=batched)


async def _handle_parsed(message: KafkaMessage, event: Any, topic: Topic, handle: Callable[[Any], Awaitable[None]],
                         publisher: EventPublisher, service: str, channels: Channels | None,
                         raw_headers: dict[str, str], *, batched: bool = False) -> None:
    record = _record_of(message, handle)
    with metrics.handling(service, topic.base_name, batched=batched) as handled:
        try:
            check_channels(channels, event)
            await handle(event)
        except PermanentFailure as failure:
            handled.dead_lettered()
            tracing.dead_lettered(failure.reason)
            await dead_letter(publisher, message, topic, service, failure.reason, failure.detail, raw_headers,
                              tenant_id=getattr(event, "tenant_id", None))
        except Exception as error:
            if not await _gives_up_after(record, error, service, topic):
                raise  # not committed: the record comes again
            handled.dead_lettered()
            tracing.dead_lettered(retries.GIVEN_UP)
            await dead_letter(publisher, message, topic, service, retries.GIVEN_UP, retries.describe(error),
                              raw_headers, tenant_id=getattr(event, "tenant_id", None))
        _failures.forget(record)


_failures = retries.FailureCounts()  # of the records this process is trying again


def _headers_of(message: KafkaMessage) -> dict[str, str]:
    return {key: value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            for key, value in message.headers.items()}


def _record_of(message: KafkaMessage, handle: Callable[..., Any]) -> tuple[Any, ...]:
    """Which record, for which handler: the key its failures are counted under."""
    raw = message.raw_message
    return (getattr(raw, "topic", None), getattr(raw, "partition", None), getattr(raw, "offset", None),
            getattr(handle, "__qualname__", repr(handle)))


async def _gives_up_after(record: tuple[Any, ...], error: Exception, service: str, topic: Topic) -> bool:
    """Count the failure; True when the record is to be dead-lettered now, else False after the back-off (the
    caller lets the error through, so the record is not committed and comes again)."""
    failures = _failures.failed(record)
    outage = retries.is_outage(error)
    if retries.gives_up(failures, outage):
        _failures.forget(record)
        log.error("handler_gave_up", service=service, topic=topic.base_name, error=type(error).__name__,
                  attempts=failures)
        return True
    pause = retries.pause_after(failures)
    log.warning("handler_failed", service=service, topic=topic.base_name, error=type(error).__name__,
                failures=failures, outage=outage, retry_in_seconds=pause)
    await asyncio.sleep(pause)
    return False


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return f"{exc.error_count()} error(s); first at {location or '<root>'}: {first['msg']}"


def _identifier(header: str | None) -> str | None:
    """A header naming the tenant or correlation id, when the envelope can carry it (1-128 characters): a record
    that failed may carry anything, and a letter that does not validate would stall the partition."""
    return header if header and len(header) <= 128 else None


async def dead_letter(
    publisher: EventPublisher,
    message: KafkaMessage,
    topic: Topic,
    service: str,
    reason: str,
    detail: str | None,
    headers: dict[str, str],
    tenant_id: str | None = None,
) -> None:
    raw = message.raw_message
    record_key = getattr(raw, "key", None)
    letter = DeadLetter(
        occurred_at=datetime.now(UTC),
        tenant_id=tenant_id or _identifier(headers.get("ce_tenantid")) or "unknown",
        correlation_id=_identifier(headers.get("ce_correlationid")) or str(message.message_id),
        service=service,
        source_topic=topic.name(publisher.namespace),
        partition=getattr(raw, "partition", None),
        offset=getattr(raw, "offset", None),
        reason=reason,
        detail=detail,
        **original_record_fields(message.body, record_key, headers),
    )
    log.warning("dead_lettered", reason=reason, source_topic=letter.source_topic, offset=letter.offset)
    await publisher.publish(letter, DEAD_LETTERS)
    metrics.DEAD_LETTERS.labels(service, topic.base_name, reason).inc()


async def handle_parsed_batch(parsed: list[tuple[KafkaMessage, Any]], topic: Topic,
                              handle: Callable[[list[Any]], Awaitable[None]], publisher: EventPublisher,
                              service: str) -> None:
    """The parsed events of a batch (with their records) to a handler that takes them in one call. During an outage
    (parley_common.retries) the error goes through after a back-off and the whole batch comes again; after any
    other error each event is handled on its own (`handle([event])`, tried again and dead-lettered as
    `handle_record` does), so one bad record does not hold up the rest."""

    async def alone(event: Any) -> None:
        await handle([event])

    alone.__qualname__ = f"{getattr(handle, '__qualname__', 'handle')}[alone]"
    try:
        with metrics.handling(service, topic.base_name, records=len(parsed)):
            await handle([event for _, event in parsed])
    except Exception as error:
        if retries.is_outage(error):
            await _gives_up_after(_record_of(parsed[0][0], handle), error, service, topic)  # the back-off
            raise
        # A record of the batch may never succeed: each on its own, so only such a one is dead-lettered
        # (after its attempts) and the others are stored.
        for view, event in parsed:
            await _handle_parsed(view, event, topic, alone, publisher, service, None, _headers_of(view))
    else:
        _failures.forget(_record_of(parsed[0][0], handle))
