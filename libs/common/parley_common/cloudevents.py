"""CloudEvents Kafka protocol binding (binary mode): attributes as `ce_*` headers, the event as JSON body,
so other systems can consume Parley's topics without Parley's code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_common.events.envelope import Envelope

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
CORRELATION_HEADER = "ce_correlationid"
TENANT_HEADER = "ce_tenantid"


# Every header `headers_for` writes, as the AsyncAPI documents describe them to subscribers.
HEADERS: dict[str, str] = {
    "ce_specversion": f"CloudEvents spec version, always {SPEC_VERSION}.",
    "ce_id": "The event's id (event_id, a UUID); consumers de-duplicate on it.",
    "ce_type": "The event type, e.g. parley.message.received (the body's `type`).",
    "ce_source": "The producing service, e.g. parley/ingest.",
    "ce_time": "When it happened (occurred_at), RFC 3339.",
    "ce_dataschema": "urn:parley:schema:<type>:v<schema_version>.",
    CORRELATION_HEADER: "The correlation id (correlation_id) that follows one request across services and logs.",
    TENANT_HEADER: "The tenant (tenant_id).",
    "ce_subject": "The record key (e.g. tenant|channel_id|external_user_id); absent when the key is empty.",
    "content-type": f"Always {CONTENT_TYPE}: the body is the event as JSON.",
}
OPTIONAL_HEADERS = frozenset({"ce_subject"})


def headers_schema() -> dict[str, Any]:
    """The JSON Schema of the headers, for the AsyncAPI documents."""
    return {
        "type": "object",
        "description": "CloudEvents attributes, Kafka protocol binding (binary content mode).",
        "properties": {name: {"type": "string", "description": text} for name, text in HEADERS.items()},
        "required": [name for name in HEADERS if name not in OPTIONAL_HEADERS],
    }


def headers_for(event: Envelope) -> dict[str, str]:
    type_name = getattr(event, "type", type(event).__name__)
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": str(event.event_id),
        "ce_type": str(type_name),
        "ce_source": type(event).source,
        "ce_time": event.occurred_at.isoformat(),
        "ce_dataschema": f"urn:parley:schema:{type_name}:v{event.schema_version}",
        CORRELATION_HEADER: event.correlation_id,
        TENANT_HEADER: event.tenant_id,
        "content-type": CONTENT_TYPE,
    }
    key = event.partition_key().decode()
    if key:
        headers["ce_subject"] = key
    return headers


def correlation_id_from(headers: Mapping[str, str | bytes]) -> str | None:
    value = headers.get(CORRELATION_HEADER)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
