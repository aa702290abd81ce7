import re
import typing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from parley_common.cloudevents import correlation_id_from, headers_for
from parley_common.events.envelope import Envelope
from parley_common.events.inbound import Customer, MessageReceived, TextPart
from parley_common.ids import ConversationKey
from parley_common.schemas import schema_documents
from parley_common.topics import ALL_TOPICS, CONTACTS_EVENTS, INBOUND_MESSAGES

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def received(**overrides: typing.Any) -> MessageReceived:
    fields: dict[str, typing.Any] = {
        "occurred_at": NOW, "tenant_id": "acme", "correlation_id": "c-1", "channel_id": "wa",
        "external_user_id": "BSUID.1", "channel_type": "whatsapp", "customer": Customer(wa_id="15550001111"),
        "provider_message_id": "wamid.1", "provider_timestamp": NOW, "received_at": NOW,
        "parts": (TextPart(text="hi"),),
    }
    return MessageReceived(**{**fields, **overrides})


def event_models() -> list[type[Envelope]]:
    models: list[type[Envelope]] = []
    for topic in ALL_TOPICS:
        payload = topic.payload
        members = typing.get_args(typing.get_args(payload)[0]) if typing.get_origin(payload) is typing.Annotated \
            else (payload,)
        models.extend(members)
    return models


def test_every_topic_name_is_versioned_and_unique() -> None:
    names = [topic.base_name for topic in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"parley(\.[a-z_-]+)+\.v\d+", name) for name in names)


@pytest.mark.parametrize("model", event_models(), ids=lambda model: model.__name__)
def test_every_event_is_frozen_versioned_and_typed(model: type[BaseModel]) -> None:
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"
    assert "type" in model.model_fields
    assert model.model_fields["schema_version"].default >= 1


def test_events_are_immutable_and_refuse_naive_times() -> None:
    event = received()
    with pytest.raises(ValidationError):
        event.tenant_id = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="timezone"):
        received(provider_timestamp=datetime(2026, 1, 1))


def test_conversation_events_are_keyed_by_tenant_channel_and_customer() -> None:
    event = received()
    assert event.conversation_key == ConversationKey("acme", "wa", "BSUID.1")
    assert event.partition_key() == b"acme|wa|BSUID.1"
    assert ConversationKey.parse("acme|wa|a|b") == ConversationKey("acme", "wa", "a|b")


def test_round_trip_through_json_keeps_every_field() -> None:
    offset = timezone(timedelta(hours=3))
    event = received(provider_timestamp=NOW.astimezone(offset))
    assert INBOUND_MESSAGES.parse(event.model_dump_json().encode()) == event


def test_a_multi_event_topic_parses_by_type() -> None:
    raw = (b'{"type": "parley.contact.blocked", "occurred_at": "2026-11-27T10:00:00Z", "tenant_id": "acme",'
           b' "correlation_id": "c", "contact_id": "k1", "identity": {"channel_id": "wa", "external_user_id": "u"}}')
    blocked = CONTACTS_EVENTS.parse(raw)
    assert type(blocked).__name__ == "ContactBlocked"
    assert blocked.partition_key() == b"acme|wa|u"


def test_cloudevents_headers_follow_the_kafka_binding() -> None:
    event = received()
    headers = headers_for(event)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == str(event.event_id)
    assert headers["ce_type"] == "parley.message.received"
    assert headers["ce_source"] == "parley/ingest"
    assert headers["ce_time"] == "2026-11-27T10:00:00+00:00"
    assert headers["ce_subject"] == "acme|wa|BSUID.1"
    assert correlation_id_from({"ce_correlationid": b"c-1"}) == "c-1"


def test_committed_event_schemas_are_current() -> None:
    for name, content in schema_documents().items():
        path = REPO / "docs" / "events" / name
        assert path.exists(), f"{path} is missing: run `make docs`"
        assert path.read_text() == content, f"{path} is stale: run `make docs`"
