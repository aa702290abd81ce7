"""Every service's AsyncAPI document passes the official AsyncAPI parser and tells subscribers the truth about
the records: the CloudEvents headers, the W3C trace context, and the correlation id in `ce_correlationid`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from parley_common import tracing
from parley_common.channels import Channels
from parley_common.cloudevents import CORRELATION_HEADER, HEADERS
from parley_common.settings import InfraSettings
from parley_contacts.app import create_app as contacts_app
from parley_contacts.settings import ContactsSettings
from parley_hooks.app import create_app as hooks_app
from parley_hooks.settings import HooksSettings
from parley_ingest.app import create_app as ingest_app
from parley_ingest.settings import IngestSettings
from parley_media.app import create_app as media_app
from parley_media.settings import MediaSettings
from parley_outbound.app import create_app as outbound_app
from parley_outbound.settings import OutboundSettings
from parley_router.app import create_app as router_app
from parley_router.settings import RouterSettings

REPO = Path(__file__).resolve().parents[3]
PARSER = REPO / ".venv" / "share" / "asyncapi-parser-3.6.6"
SECRET = "k" * 32


def apps(infra: InfraSettings) -> dict[str, FastAPI]:
    """Every service with a Kafka broker (console has none), built as in production; nothing is started."""
    channels = Channels.parse({"channels": [{"id": "sb", "type": "sandbox", "tenant_id": "acme", "secret": SECRET}]})
    return {
        "ingest": ingest_app(IngestSettings(infra=infra), channels=channels),
        "contacts": contacts_app(ContactsSettings(infra=infra), channels=channels),
        "router": router_app(RouterSettings(infra=infra), channels=channels),
        "outbound": outbound_app(OutboundSettings(infra=infra), channels=channels),
        "media": media_app(MediaSettings(infra=infra, signing_secret=SECRET, id_secret=SECRET),  # type: ignore[arg-type]
                           channels=channels),
        "hooks": hooks_app(HooksSettings(infra=infra), channels=channels),
    }


@pytest.fixture
async def documents(infra_settings: InfraSettings) -> dict[str, dict[str, Any]]:
    found = {}
    for name, app in apps(infra_settings).items():
        route = next(route for route in app.routes if getattr(route, "path", "") == "/asyncapi.json")
        found[name] = await route.endpoint()  # type: ignore[attr-defined]
    return found


def test_every_document_passes_the_official_asyncapi_parser(documents: dict[str, dict[str, Any]]) -> None:
    if not (PARSER / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run([str(REPO / "deploy" / "k8s" / "validate.sh"), "--tools-only"], check=True, capture_output=True)
    script = (Path(__file__).with_name("asyncapi_parse.mjs")).read_text()
    parsed = subprocess.run(["node", "--input-type=module", "-e", script], cwd=PARSER, input=json.dumps(documents),
                            capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(parsed.stdout) == {name: [] for name in documents}


def test_every_message_names_the_headers_actually_sent(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        messages = document["components"]["messages"]
        assert messages, name
        for message in messages.values():
            assert message["correlationId"]["location"] == f"$message.header#/{CORRELATION_HEADER}"
            assert set(message["headers"]["properties"]) == set(HEADERS) | {"traceparent", "tracestate"}
            assert {"ce_id", "ce_type", "ce_source", "ce_specversion"} <= set(message["headers"]["required"])
            assert not set(tracing.HEADERS) & set(message["headers"]["required"])  # only when the producer traces
        assert "$message.header#/correlation_id" not in json.dumps(document)


def test_one_operation_per_consumer_group(documents: dict[str, dict[str, Any]]) -> None:
    """Several consumers of one group in a pod (outbound's senders, router's intake) are one subscriber."""
    for name, document in documents.items():
        assert not [key for key in [*document["channels"], *document["operations"]] if "#" in key], name
    senders = [key for key in documents["outbound"]["channels"] if "parley.outbound.requests.v1:" in key]
    intake = [key for key in documents["router"]["channels"] if "parley.inbound.messages.v1:" in key]
    assert len(senders) == len(intake) == 1
