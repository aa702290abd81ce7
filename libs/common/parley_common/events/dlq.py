"""Dead letters: what a consumer could not process, with the reason and the original bytes — or, for a record
too large to travel inside a letter, its first bytes, its size and its SHA-256, the original staying where
`source_topic`/`partition`/`offset` say for that topic's retention."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

from pydantic import Field

from parley_common.events.envelope import Envelope


class DeadLetter(Envelope):
    source = "parley"
    type: Literal["parley.dead_letter"] = "parley.dead_letter"
    schema_version: Literal[1] = 1
    service: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str = Field(description="machine-readable reason, e.g. invalid_event, unknown_channel")
    detail: str | None = None
    original_key_base64: str | None = None
    original_value_base64: str
    original_headers: dict[str, str] = Field(default_factory=dict)
    original_truncated: bool = Field(default=False, description="original_value_base64 holds only the first bytes")
    original_size_bytes: int | None = Field(default=None, description="the whole original's size, when truncated")
    original_sha256: str | None = Field(default=None, description="the whole original's SHA-256, when truncated")


# The dead-letter topic takes 1 MiB records; base64 adds a third, and the letter carries headers and a detail.
# An original up to 512 KiB travels whole (a ~700 KiB letter); a larger one (an e-mail, an attachment event of up
# to 36 MiB) would make the letter unpublishable, and the record would come again forever, so the letter keeps its
# first 16 KiB (enough to read what it was) and a reference to the whole.
ORIGINAL_MAX_BYTES = 512 * 1024
TRUNCATED_PREVIEW_BYTES = 16 * 1024


def original_value_fields(raw: bytes) -> dict[str, Any]:
    """The DeadLetter fields describing an original value of `raw` bytes."""
    if len(raw) <= ORIGINAL_MAX_BYTES:
        return {"original_value_base64": base64.b64encode(raw).decode()}
    return {"original_value_base64": base64.b64encode(raw[:TRUNCATED_PREVIEW_BYTES]).decode(),
            **_truncated(raw)}


# A record's key and headers are not bounded by its topic's size alone (a Kafka record may carry megabytes of
# headers): past these bounds they are cut too and the letter is marked truncated, so it stays publishable and
# is never replayed as if it were whole.
KEPT_KEY_BYTES = 1024
KEPT_HEADERS = 64
KEPT_HEADER_NAME = 256
KEPT_HEADER_VALUE = 1024
HEADERS_MAX_CHARS = 64 * 1024


def original_record_fields(value: bytes, key: bytes | None, headers: dict[str, str]) -> dict[str, Any]:
    """The DeadLetter fields describing a whole Kafka record: value, key and headers, each within its bound."""
    fields = original_value_fields(value)
    if key and len(key) > KEPT_KEY_BYTES:
        fields |= _truncated(value) | {"original_key_base64": base64.b64encode(key[:KEPT_KEY_BYTES]).decode()}
    elif key:
        fields["original_key_base64"] = base64.b64encode(key).decode()
    if len(headers) > KEPT_HEADERS or sum(len(name) + len(text) for name, text in headers.items()) > HEADERS_MAX_CHARS:
        fields |= _truncated(value)
        headers = {name[:KEPT_HEADER_NAME]: text[:KEPT_HEADER_VALUE]
                   for name, text in list(headers.items())[:KEPT_HEADERS]}
    return fields | {"original_headers": headers}


def _truncated(value: bytes) -> dict[str, Any]:
    return {"original_truncated": True, "original_size_bytes": len(value),
            "original_sha256": hashlib.sha256(value).hexdigest()}
