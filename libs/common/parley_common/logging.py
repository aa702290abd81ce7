"""Structured logs: JSON off a TTY, console on a TTY; a correlation id bound per request or record;
message bodies, secrets and full phone numbers never printed."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, merge_contextvars

_SENSITIVE_KEYS = re.compile(
    r"(body|text|html|caption|content|token|secret|password|authorization|signature|api_key|raw)", re.I
)
_PHONE = re.compile(r"\+?\d{7,15}")


def bind_correlation_id(correlation_id: str | None) -> None:
    if correlation_id:
        bind_contextvars(correlation_id=correlation_id)


def _mask_phone(match: re.Match[str]) -> str:
    digits = match.group(0)
    return digits[:3] + "*" * (len(digits) - 5) + digits[-2:]


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key == "event":
            continue
        if _SENSITIVE_KEYS.search(key):
            event_dict[key] = "[redacted]"
        elif isinstance(value, str) and ("phone" in key.lower() or key in {"wa_id", "to", "from_"}):
            event_dict[key] = _PHONE.sub(_mask_phone, value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool | None = None) -> None:
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s", force=True)
    structlog.configure(
        processors=[
            merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    bind_contextvars(service=service)
