"""The provider plugin interface: one module per channel implements it (Dispatch's plugin-per-provider)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from parley_common.channels import AnyChannel
from parley_common.events.common import ChannelType
from parley_ingest.domain.model import Batch, MalformedPayload, RequestContext


class ChannelPlugin(Protocol):
    channel_type: ChannelType
    content_types: tuple[str, ...]
    # True when the channel answers Meta's GET subscription handshake.
    handshake: bool

    def verify(self, channel: AnyChannel, headers: Mapping[str, str], body: bytes) -> bool:
        """Is the request authentic? Headers are lower-cased names."""
        ...

    def normalise(self, channel: AnyChannel, body: bytes, ctx: RequestContext) -> Batch:
        """Events for the body; raises MalformedPayload when the body is not this channel's shape."""
        ...


# No provider nests deeper than ~10; an event holding a much deeper value could not be serialised to Kafka.
MAX_JSON_DEPTH = 64


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except RecursionError:
        raise MalformedPayload("payload_too_deep", f"the JSON nests deeper than {MAX_JSON_DEPTH}") from None
    except (UnicodeDecodeError, ValueError):
        raise MalformedPayload("malformed_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("unrecognised_payload", "the body is not a JSON object")
    if json_depth(payload) > MAX_JSON_DEPTH:
        raise MalformedPayload("payload_too_deep", f"the JSON nests deeper than {MAX_JSON_DEPTH}")
    return payload


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (the value may be ~1,000 deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:  # past the limit the answer is known: stop walking that branch
                pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
