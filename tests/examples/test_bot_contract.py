"""docs/bots.md tells the truth: its table of topics (action, topic, event type, key) is what the example bot's
AsyncAPI document says it receives and sends, and what the topic registry says those topics carry and are keyed
by."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from faq_bot.app import BotConfig, create_app
from parley_common.connections import Connections
from parley_common.service import asyncapi_document
from parley_common.topics import ALL_TOPICS

DOC = Path(__file__).resolve().parents[2] / "docs" / "bots.md"
Row = tuple[str, str, str, str]


def documented_rows() -> set[Row]:
    text = DOC.read_text()
    table = text.split("<!-- bot-topics -->", 1)[1].split("<!-- /bot-topics -->", 1)[0]
    rows = set()
    for line in table.strip().splitlines()[2:]:  # past the header and its rule
        cells = [cell.strip().strip("`").replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        action, topic, event_type, key = cells
        rows.add((action, topic, event_type, key))
    return rows


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("%20", " ")]
    return node


def asyncapi_rows() -> set[tuple[str, str, str]]:
    config = BotConfig(bot_id="faq-bot", token="unused", router_url="http://router", handover_team="support",
                       kafka=Connections(kafka_bootstrap="127.0.0.1:1"), namespace="")
    _, broker = create_app(config)
    document = asyncapi_document(broker, "faq-bot")
    rows = set()
    for operation in document["operations"].values():
        channel = _resolve(document, operation["channel"]["$ref"])
        [message_ref] = operation["messages"]
        message = _resolve(document, _resolve(document, message_ref["$ref"])["$ref"])
        schema = _resolve(document, message["payload"]["$ref"])
        rows.add((operation["action"], channel["address"], schema["properties"]["type"]["const"]))
    return rows


def test_the_docs_topics_are_the_example_bots_asyncapi() -> None:
    assert {row[:3] for row in documented_rows()} == asyncapi_rows()


def test_the_docs_event_types_and_keys_are_the_topic_registrys() -> None:
    registry = {topic.base_name: topic for topic in ALL_TOPICS}
    for _, name, event_type, key in documented_rows():
        topic = registry[name]
        assert (topic.payload.model_fields["type"].default, topic.key) == (event_type, key), name
