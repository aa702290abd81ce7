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


def load_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise MalformedPayload("malformed_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("unrecognised_payload", "the body is not a JSON object")
    return payload


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
