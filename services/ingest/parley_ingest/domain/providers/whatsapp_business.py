"""WhatsApp business-side webhooks: template status and quality, account and number health (reference §1.4,
§1.12). They concern the WhatsApp Business Account (`entry[].id`), not a conversation."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from parley_common.events.channels import ChannelHealthReported, TemplateState, TemplateUpdated
from parley_ingest.domain.model import (
    Batch,
    Normalised,
    RequestContext,
    bounded_raw,
    from_unix_seconds,
    stable_event_id,
)
from parley_ingest.domain.providers.base import as_dict, opt_str

TEMPLATE_FIELDS = frozenset({"message_template_status_update", "message_template_quality_update",
                             "template_category_update", "message_template_components_update"})
HEALTH_FIELDS = frozenset({"account_update", "account_alerts", "account_review_update", "phone_number_quality_update",
                           "phone_number_name_update", "business_capability_update", "security"})
BUSINESS_FIELDS = TEMPLATE_FIELDS | HEALTH_FIELDS

# What a template status event means for sending (Meta template statuses; FLAGGED only warns: still approved).
_TEMPLATE_STATES: dict[str, TemplateState] = {
    "APPROVED": "approved", "REINSTATED": "approved", "PENDING": "pending", "IN_APPEAL": "pending",
    "REJECTED": "rejected", "PAUSED": "paused", "DISABLED": "disabled", "PENDING_DELETION": "disabled",
    "DELETED": "disabled", "ARCHIVED": "disabled", "LIMIT_EXCEEDED": "disabled",
}


def business_change(entry: dict[str, Any], change: dict[str, Any], ctx: RequestContext) -> Batch:
    """One business-side change as a channel event for the request's channel."""
    field = str(change.get("field"))
    value = as_dict(change.get("value"))
    at = from_unix_seconds(entry["time"]) if entry.get("time") else ctx.received_at
    digest = hashlib.sha256(json.dumps([field, entry.get("time"), value], sort_keys=True).encode()).hexdigest()
    common = {"event_id": stable_event_id(ctx, "channel_update", digest), "occurred_at": ctx.received_at,
              "tenant_id": ctx.tenant_id, "correlation_id": ctx.correlation_id, "channel_id": ctx.channel_id,
              "channel_type": ctx.channel_type, "provider_timestamp": at}
    event: TemplateUpdated | ChannelHealthReported
    if field in TEMPLATE_FIELDS:
        provider_event = str(value.get("event") or field.removeprefix("message_template_"))
        info = as_dict(value.get("rejection_info"))
        event = TemplateUpdated(
            **common, name=str(value.get("message_template_name") or ""), provider_event=provider_event,
            language=opt_str(value.get("message_template_language")),
            provider_template_id=opt_str(value.get("message_template_id")),
            status=_TEMPLATE_STATES.get(provider_event.upper()) if field == "message_template_status_update" else None,
            quality=opt_str(value.get("new_quality_score")),
            reason=opt_str(info.get("reason") or value.get("reason")),
        )
    else:
        event = ChannelHealthReported(
            **common, kind=field, event=opt_str(value.get("event")),
            messaging_limit=opt_str(value.get("current_limit") or value.get("messaging_limit_tier")),
            detail=opt_str(value.get("alert_description") or value.get("decision") or value.get("reason")),
            raw=bounded_raw(value, ctx.body_size)[0],
        )
    return Batch(events=[Normalised(event, "channel_update", digest)])
