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

from parley_common.tracing import add_trace_ids

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


def _uncoloured(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's copy of the message with terminal colour codes
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool | None = None) -> None:
    """structlog for our own logs, and the same processors for the libraries' standard-library logs (aiokafka,
    uvicorn, FastStream through BROKER_LOGGER, pymongo…): one JSON object per line with `logger`, `level`,
    `timestamp`, the bound correlation id, the trace and span ids inside a span, and the same redaction,
    instead of plain text lines in between."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    shared: list[Any] = [merge_contextvars, add_trace_ids, structlog.processors.add_log_level,
                         structlog.processors.TimeStamper(fmt="iso", utc=True)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder(), _uncoloured,
                           redact],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    structlog.configure(
        processors=[*shared, redact, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    bind_contextvars(service=service)


# FastStream's own default logger has a handler of its own writing coloured text; this one propagates to the root
# handler above (its per-record lines are at DEBUG: parley_common.kafka.make_broker).
BROKER_LOGGER = logging.getLogger("parley.broker")
