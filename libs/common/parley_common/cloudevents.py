"""CloudEvents Kafka protocol binding (binary mode): attributes as `ce_*` headers, the event as JSON body,
so other systems can consume Parley's topics without Parley's code."""

from __future__ import annotations

from collections.abc import Mapping

from parley_common.events.envelope import Envelope

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
CORRELATION_HEADER = "ce_correlationid"
TENANT_HEADER = "ce_tenantid"


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
