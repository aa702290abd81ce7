"""The libraries' standard-library logs (aiokafka, uvicorn, FastStream's broker) come out in the services' JSON
format, with the bound correlation id and the same redaction — not as plain text lines between JSON ones."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import logging
from parley_common.logging import BROKER_LOGGER, bind_correlation_id, configure_logging
import structlog
configure_logging("parley-test", "INFO", json=True)
bind_correlation_id("corr-42")
logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed for group %s", "g1")
logging.getLogger("uvicorn.error").info("Application startup complete.", extra={"color_message": "\\x1b[1m"})
BROKER_LOGGER.info("Received", extra={"topic": "parley.inbound.messages.v1", "authorization": "Bearer abc"})
logging.getLogger("uvicorn.error").debug("below the level")
structlog.get_logger("ours").info("service_started")
"""


def test_library_logs_are_json_lines_like_ours() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["Heartbeat failed for group g1", "Application startup complete.",
                                                 "Received", "service_started"]
    kafka, uvicorn, broker, _ours = lines
    assert (kafka["logger"], kafka["level"]) == ("aiokafka.consumer.group_coordinator", "warning")
    assert uvicorn["logger"] == "uvicorn.error" and uvicorn["level"] == "info" and "color_message" not in uvicorn
    assert broker["topic"] == "parley.inbound.messages.v1" and broker["authorization"] == "[redacted]"
    for line in lines:
        assert line["service"] == "parley-test" and line["correlation_id"] == "corr-42"
        assert line["timestamp"].endswith("Z")
