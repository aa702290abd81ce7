"""What a provider payload normalises to: events to publish (each with its de-duplication identity) and
items we could not normalise (they go to the dead-letter topic with their raw bytes)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from parley_common.events.channels import ChannelHealthReported, TemplateUpdated
from parley_common.events.common import ChannelType
from parley_common.events.inbound import (
    RAW_LIMIT_BYTES,
    DeliveryStatus,
    DeliveryStatusReported,
    EmailAttachmentReceived,
    MarketingPreferenceChanged,
    MessageReceived,
)
from parley_ingest.domain.identities import IdentityClaim

InboundEvent = (MessageReceived | DeliveryStatusReported | EmailAttachmentReceived | MarketingPreferenceChanged
                | TemplateUpdated | ChannelHealthReported)
# Stable event ids: a provider retry that slips past de-duplication carries the same event_id, so
# consumers that are idempotent on event_id ignore it too.
_EVENT_ID_NAMESPACE = uuid.UUID("5b0e2a52-7a8f-4c55-9d3e-2f3c1f0a9e11")


class MalformedPayload(ValueError):
    """The body is not what this channel sends at all (not JSON, not an email, wrong envelope): 400; or it is
    beyond what ingest parses (too deep, too many parts, over the time budget): 413. Never retryable."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class RequestContext:
    tenant_id: str
    channel_id: str
    channel_type: ChannelType
    correlation_id: str
    received_at: datetime
    # A body under half of RAW_LIMIT_BYTES cannot hold an item whose JSON exceeds the limit (the margin
    # covers re-serialised numbers), so its items need no measuring.
    body_size: int | None = None


@dataclass(frozen=True)
class Normalised:
    event: InboundEvent
    dedup_kind: str  # "message", "status", "attachment", … : part of the Redis de-dup key
    dedup_id: str
    identity: IdentityClaim | None = None  # the customer's identifiers: the event is published under their key


@dataclass(frozen=True)
class IdentityLink:
    """Identifiers that name one customer, learnt from a webhook that carries no conversation event."""

    tenant_id: str
    channel_id: str
    claim: IdentityClaim


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
    raw: bytes


@dataclass
class Batch:
    events: list[Normalised] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    links: list[IdentityLink] = field(default_factory=list)
    # what the provider reads in our HTTP answer, instead of the outcome (Viber's welcome message)
    reply: dict[str, Any] | None = None

    def extend(self, other: Batch) -> None:
        self.events.extend(other.events)
        self.rejected.extend(other.rejected)
        self.links.extend(other.links)


def bounded_raw(obj: Any, body_size: int | None = None) -> tuple[dict[str, Any] | None, bool]:
    """The provider object itself when its JSON is under RAW_LIMIT_BYTES; else (None, truncated=True)."""
    if not isinstance(obj, dict):
        obj = {"value": obj}
    if body_size is not None and body_size <= RAW_LIMIT_BYTES // 2:
        return obj, False
    size = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    return (obj, False) if size <= RAW_LIMIT_BYTES else (None, True)


def raw_bytes(obj: Any) -> bytes:
    """Bytes of one provider item for a dead letter, bounded by RAW_LIMIT_BYTES."""
    data = obj if isinstance(obj, bytes) else json.dumps(obj, ensure_ascii=False, default=str).encode()
    return data[:RAW_LIMIT_BYTES]


def stable_event_id(ctx: RequestContext, kind: str, dedup_id: str) -> uuid.UUID:
    return uuid.uuid5(_EVENT_ID_NAMESPACE, f"{ctx.tenant_id}|{ctx.channel_id}|{kind}|{dedup_id}")


def from_unix_seconds(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def from_unix_millis(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def envelope_fields(ctx: RequestContext, kind: str, dedup_id: str, external_user_id: str) -> dict[str, Any]:
    """What every inbound event takes from the request: tenant, channel, correlation id, a stable event id."""
    return {
        "event_id": stable_event_id(ctx, kind, dedup_id),
        "occurred_at": ctx.received_at,
        "tenant_id": ctx.tenant_id,
        "correlation_id": ctx.correlation_id,
        "channel_id": ctx.channel_id,
        "external_user_id": external_user_id,
    }


def message_event(
    ctx: RequestContext,
    *,
    external_user_id: str,
    raw: Any,
    dedup_id: str | None = None,
    identity: IdentityClaim | None = None,
    **fields: Any,
) -> Normalised:
    """A MessageReceived (customer, provider_message_id, provider_timestamp, parts, … in `fields`); raw bounded."""
    dedup = dedup_id or str(fields["provider_message_id"])
    bounded, truncated = bounded_raw(raw, ctx.body_size)
    event = MessageReceived(
        **envelope_fields(ctx, "message", dedup, external_user_id),
        channel_type=ctx.channel_type, received_at=ctx.received_at, raw=bounded, raw_truncated=truncated, **fields,
    )
    return Normalised(event, "message", dedup, identity)


def status_event(
    ctx: RequestContext,
    *,
    external_user_id: str,
    status: DeliveryStatus,
    raw: Any,
    identity: IdentityClaim | None = None,
    **fields: Any,
) -> Normalised:
    """A DeliveryStatusReported; de-duplicated on (provider message id, status)."""
    dedup = f"{fields['provider_message_id']}:{status.value}"
    event = DeliveryStatusReported(
        **envelope_fields(ctx, "status", dedup, external_user_id),
        channel_type=ctx.channel_type, status=status, raw=bounded_raw(raw, ctx.body_size)[0], **fields,
    )
    return Normalised(event, "status", dedup, identity)


def guarded(batch: Batch, item: Any, build: Any) -> None:
    """Run one item's normaliser; a failure becomes a dead letter for that item, not for the whole request."""
    try:
        result = build(item)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        batch.rejected.append(Rejected("normaliser_failed", f"{type(exc).__name__}: {exc}"[:500], raw_bytes(item)))
        return
    if isinstance(result, Batch):
        batch.extend(result)
    elif isinstance(result, Normalised):
        batch.events.append(result)
    else:
        batch.events.extend(result)
