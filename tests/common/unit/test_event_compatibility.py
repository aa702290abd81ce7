"""Rolling upgrades and rollbacks survive an additive event change: consumers read tolerantly, producers stay
strict, and a change that is not backward compatible within its `.vN` topic fails here (and in `make docs`)."""

import json
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from parley_common.compatibility import breaking_changes
from parley_common.events.outbound import SendMessage
from parley_common.mongo import read_stored
from parley_common.schemas import refusals, schema_documents
from parley_common.topics import ALL_TOPICS, Topic

REPO = Path(__file__).resolve().parents[3]
ADDED_LATER = "added_by_a_newer_producer"


def topic_models() -> list[tuple[Topic, type[BaseModel]]]:
    """Every topic with every model its consumers parse from it."""
    pairs = []
    for topic in ALL_TOPICS:
        payload = topic.payload
        members = typing.get_args(typing.get_args(payload)[0]) if typing.get_origin(payload) is typing.Annotated \
            else (payload,)
        pairs += [(topic, model) for model in members]
    return pairs


def model_name(item: Topic | type[BaseModel]) -> str:
    return item.__name__ if isinstance(item, type) else ""


def sample(schema: dict[str, typing.Any], defs: dict[str, typing.Any], extra: bool) -> typing.Any:
    """The smallest valid document for a model's JSON Schema; with `extra`, every object (nested ones too)
    carries a field the model does not know."""
    if "$ref" in schema:
        return sample(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, extra)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            options = [option for option in schema[combinator] if option.get("type") != "null"]
            return sample(options[0], defs, extra)
    kind = schema.get("type")
    if kind == "object":
        fields = schema.get("properties", {})
        chosen = [name for name in fields if name in schema.get("required", []) or "const" in fields[name]]
        document = {name: sample(fields[name], defs, extra) for name in chosen}
        return {**document, ADDED_LATER: {"any": ["shape"]}} if extra and fields else document
    if kind == "array":
        return [sample(schema.get("items", {}), defs, extra) for _ in range(max(schema.get("minItems", 0), 1))]
    if kind == "string":
        formats = {"date-time": "2026-12-01T10:00:00Z", "uuid": "00000000-0000-4000-8000-000000000001"}
        return formats.get(schema.get("format", ""), "x" * max(schema.get("minLength", 1), 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return False if kind == "boolean" else "x"


def document(model: type[BaseModel], extra: bool) -> bytes:
    schema = model.model_json_schema()
    return json.dumps(sample(schema, schema.get("$defs", {}), extra)).encode()


@pytest.mark.parametrize(("topic", "model"), topic_models(), ids=model_name)
def test_every_consumer_ignores_fields_it_does_not_know(topic: Topic, model: type[BaseModel]) -> None:
    newer = document(model, extra=True)
    assert ADDED_LATER.encode() in newer
    event = topic.parse(newer)  # what parley_common.records.handle_record and every other consumer call
    assert type(event) is model
    without = topic.parse(document(model, extra=False))
    assert event.model_dump(exclude={"event_id"}) == without.model_dump(exclude={"event_id"})


@pytest.mark.parametrize(("topic", "model"), topic_models(), ids=model_name)
def test_producers_stay_strict(topic: Topic, model: type[BaseModel]) -> None:
    newer = document(model, extra=True)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        topic.adapter().validate_json(newer)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        model(**{**json.loads(document(model, extra=False)), ADDED_LATER: 1})


@pytest.mark.parametrize(("topic", "model"), topic_models(), ids=model_name)
def test_known_fields_are_still_validated_by_a_tolerant_reader(topic: Topic, model: type[BaseModel]) -> None:
    for field, wrong in (("tenant_id", ""), ("occurred_at", "yesterday"), ("event_id", "not-a-uuid")):
        event = {**json.loads(document(model, extra=True)), field: wrong}
        with pytest.raises(ValidationError, match=field):
            topic.parse(json.dumps(event).encode())


def test_every_consumer_parses_through_its_topic() -> None:
    """No consumer validates event bytes by another path that could still refuse unknown fields."""
    sources = [*(REPO / "services").rglob("*.py"), *(REPO / "examples").rglob("*.py")]
    offenders = [str(path.relative_to(REPO)) for path in sources
                 if "validate_json(" in path.read_text()]  # model_validate_json( too
    assert offenders == []


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda topic: topic.base_name)
def test_event_models_stay_compatible_with_the_committed_schemas(topic: Topic) -> None:
    committed = json.loads((REPO / "docs" / "events" / f"{topic.base_name}.schema.json").read_text())
    current = json.loads(schema_documents()[f"{topic.base_name}.schema.json"])
    assert breaking_changes(committed, current) == [], \
        f"not backward compatible within {topic.base_name}: publish the change on a new .vN topic"


BEFORE: dict[str, typing.Any] = {
    "type": "object",
    "required": ["tenant_id", "kind"],
    "properties": {
        "tenant_id": {"type": "string", "minLength": 1, "description": "whose"},
        "kind": {"enum": ["a", "b"]},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    },
}


def changed(**properties: typing.Any) -> dict[str, typing.Any]:
    fields = {name: schema for name, schema in {**BEFORE["properties"], **properties}.items() if schema}
    return {**BEFORE, "properties": fields}


def test_the_compatibility_check_allows_new_optional_fields_and_new_prose() -> None:
    after = changed(extra_note={"type": "string", "default": ""}, tenant_id={"type": "string", "minLength": 1})
    assert breaking_changes(BEFORE, after) == []


def test_the_compatibility_check_refuses_what_breaks_a_reader_of_the_other_version() -> None:
    assert breaking_changes(BEFORE, changed(note=None)) == ["<event>.note removed"]
    assert breaking_changes(BEFORE, {**BEFORE, "required": ["tenant_id", "kind", "note"]}) == \
        ["<event>.note newly required"]
    assert breaking_changes(BEFORE, changed(tenant_id={"type": "integer"})) == \
        ["<event>.tenant_id changed type or constraints"]
    assert breaking_changes(BEFORE, changed(kind={"enum": ["a", "b", "c"]})) == \
        ["<event>.kind changed type or constraints"]


def test_the_compatibility_check_follows_event_types_and_nested_objects() -> None:
    def union(*types: str) -> dict[str, typing.Any]:
        return {"oneOf": [{"$ref": f"#/$defs/{name}"} for name in types],
                "discriminator": {"propertyName": "type", "mapping": {name: f"#/$defs/{name}" for name in types}},
                "$defs": {name: BEFORE for name in types}}
    assert breaking_changes(union("A"), union("A", "B")) == []
    assert breaking_changes(union("A", "B"), union("A")) == ["event type B removed"]
    narrower = {**union("A"), "$defs": {"A": changed(note=None)}}
    assert breaking_changes(union("A"), narrower) == ["A.note removed"]


def test_make_docs_refuses_to_publish_a_breaking_change(tmp_path: Path) -> None:
    name = f"{ALL_TOPICS[0].base_name}.schema.json"
    documents = schema_documents()
    (tmp_path / name).write_text(documents[name])
    assert refusals(tmp_path, documents) == []
    published = json.loads(documents[name])
    published["properties"]["retired_field"] = {"type": "string"}
    (tmp_path / name).write_text(json.dumps(published))
    assert refusals(tmp_path, documents) == [f"{name}: <event>.retired_field removed"]


def test_a_service_reads_its_own_stored_documents_as_tolerantly_as_events() -> None:
    """A rollback reads what the newer release stored (outbound's stored commands, statuses, templates)."""
    newer = json.loads(document(SendMessage, extra=True))
    assert ADDED_LATER in json.dumps(newer["content"])  # unknown at every depth, not only the top
    stored = read_stored(SendMessage, newer)
    without = read_stored(SendMessage, json.loads(document(SendMessage, extra=False)))
    assert stored.model_dump(exclude={"event_id"}) == without.model_dump(exclude={"event_id"})
    with pytest.raises(ValidationError, match="string_too_short"):
        read_stored(SendMessage, {**newer, "tenant_id": ""})
    with pytest.raises(ValidationError, match="extra_forbidden"):
        SendMessage.model_validate(newer)  # what it builds and accepts from outside stays strict
