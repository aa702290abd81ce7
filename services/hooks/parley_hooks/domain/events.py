"""What a subscription can receive: the event types of the public topics, and each event as a CloudEvent in
structured mode (the attributes the Kafka records carry as `ce_*` headers, and the event itself as `data`)."""

from __future__ import annotations

import json
import typing
from typing import Any

from parley_common.cloudevents import SPEC_VERSION, headers_for
from parley_common.events.envelope import Envelope
from parley_common.topics import (
    CONTACTS_EVENTS,
    CONVERSATIONS_EVENTS,
    INBOUND_MESSAGES,
    INBOUND_STATUSES,
    MEDIA_EVENTS,
    OUTBOUND_MESSAGES,
    Topic,
)

CONTENT_TYPE = "application/cloudevents+json"
# The topics other systems read: what customers wrote, what was sent and its fate, conversations, contacts and
# attachments. Not the internal ones (commands, retries, attachment bytes, dead letters).
PUBLIC_TOPICS: tuple[Topic, ...] = (INBOUND_MESSAGES, INBOUND_STATUSES, CONVERSATIONS_EVENTS, OUTBOUND_MESSAGES,
                                    CONTACTS_EVENTS, MEDIA_EVENTS)


def _models(payload: Any) -> list[type[Envelope]]:
    """The models of a topic's payload: one model, or an (annotated) union of them."""
    if isinstance(payload, type):
        return [payload]
    inner = typing.get_args(payload)
    if typing.get_origin(payload) is typing.Annotated:
        return _models(inner[0])
    return [model for member in inner for model in _models(member)]


def event_types(topics: tuple[Topic, ...] = PUBLIC_TOPICS) -> dict[str, str]:
    """CloudEvents type → the topic carrying it."""
    found: dict[str, str] = {}
    for topic in topics:
        for model in _models(topic.payload):
            default = model.model_fields["type"].default
            if isinstance(default, str):
                found[default] = topic.base_name
    return found


def structured(event: Envelope) -> bytes:
    """The JSON a receiver gets: CloudEvents 1.0 attributes at the top, the event (as on the topic) in `data`."""
    headers = headers_for(event)
    document: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": headers["ce_id"],
        "type": headers["ce_type"],
        "source": headers["ce_source"],
        "time": headers["ce_time"],
        "datacontenttype": "application/json",
        "dataschema": headers["ce_dataschema"],
        "correlationid": headers["ce_correlationid"],
        "tenantid": headers["ce_tenantid"],
    }
    if "ce_subject" in headers:
        document["subject"] = headers["ce_subject"]
    document["data"] = json.loads(event.model_dump_json())
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
