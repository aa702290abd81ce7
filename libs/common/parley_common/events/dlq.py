"""Dead letters: what a consumer could not process, with the reason and the original bytes."""

from __future__ import annotations

from typing import Literal

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
