"""The sandbox channel: a local fake provider with a small JSON body, authenticated by a bearer secret.

A customer message: {"type": "message", "id", "user_id", "name"?, "text", "timestamp"?}
A status:           {"type": "status", "message_id", "user_id", "status": "delivered"|"read"|"failed", "timestamp"?}
`timestamp` is unix seconds or ISO 8601; without it the time of receipt counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from parley_common.channels import AnyChannel, SandboxChannel
from parley_common.events.common import ChannelType
from parley_common.events.inbound import Customer, DeliveryStatus, ProviderError, TextPart
from parley_ingest.domain.model import (
    Batch,
    MalformedPayload,
    Normalised,
    RequestContext,
    from_unix_seconds,
    guarded,
    message_event,
    status_event,
)
from parley_ingest.domain.providers.base import as_dict, load_json_object, opt_str
from parley_ingest.domain.signatures import bearer_matches

_STATUSES = {"delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.READ, "failed": DeliveryStatus.FAILED}


class SandboxPlugin:
    channel_type: ChannelType = ChannelType.SANDBOX
    content_types: tuple[str, ...] = ("application/json",)
    handshake: bool = False

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        assert isinstance(channel, SandboxChannel)
        return any(bearer_matches(secret, headers.get("authorization")) for secret in channel.inbound_secrets())

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        payload = load_json_object(body)
        if payload.get("type") not in ("message", "status"):
            raise MalformedPayload("unrecognised_payload", 'expected "type": "message" or "status"')
        batch = Batch()
        guarded(batch, payload, lambda p: _item(as_dict(p), ctx))
        return batch


def _item(payload: dict[str, Any], ctx: RequestContext) -> Normalised:
    user_id = str(payload["user_id"])
    when = _timestamp(payload.get("timestamp"), ctx.received_at)
    if payload["type"] == "status":
        status = _STATUSES[str(payload["status"])]
        failed = status is DeliveryStatus.FAILED
        errors = (ProviderError(code="failed", detail=opt_str(payload.get("error"))),) if failed else ()
        return status_event(ctx, external_user_id=user_id, provider_message_id=str(payload["message_id"]),
                            status=status, provider_timestamp=when, raw=payload, errors=errors)
    return message_event(
        ctx, external_user_id=user_id, customer=Customer(profile_name=opt_str(payload.get("name"))),
        provider_message_id=str(payload["id"]), provider_timestamp=when,
        parts=(TextPart(text=str(payload["text"])),), raw=payload,
    )


def _timestamp(value: Any, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_unix_seconds(value)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
