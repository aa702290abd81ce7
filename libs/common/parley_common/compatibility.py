"""Backward compatibility of an event schema within its `.vN` topic: what may change without a new topic.

Consumers read tolerantly (unknown fields ignored) while producers stay strict, so one release may add optional
fields and new event types to a topic; everything else breaks a reader still running the other version during a
rolling upgrade or a rollback: a removed field or event type, a field that became required, a field whose type
or constraints changed (a new enum value included: older readers refuse it). Pure: compares two JSON Schemas as
`parley_common.schemas` writes them to docs/events/."""

from __future__ import annotations

from typing import Any

ROOT = "<event>"
_PROSE = frozenset({"title", "description", "default", "examples"})


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Every change from `old` to `new` a reader of the other version would not survive, as readable lines."""
    old_objects, new_objects = _objects(old), _objects(new)
    problems = [f"event type {name} removed" for name in sorted(_event_types(old) - _event_types(new))]
    for name, before in old_objects.items():
        after = new_objects.get(name)
        if after is not None:
            problems += _object_changes(name, before, after)
    return problems


def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = {name: body for name, body in schema.get("$defs", {}).items() if body.get("type") == "object"}
    if schema.get("type") == "object":
        objects[ROOT] = schema
    return objects


def _event_types(schema: dict[str, Any]) -> set[str]:
    mapping = schema.get("discriminator", {}).get("mapping", {})
    return set(mapping) if mapping else {ROOT}


def _object_changes(name: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old_fields, new_fields = before.get("properties", {}), after.get("properties", {})
    old_required, new_required = set(before.get("required", [])), set(after.get("required", []))
    problems = [f"{name}.{field} removed" for field in sorted(set(old_fields) - set(new_fields))]
    problems += [f"{name}.{field} newly required" for field in sorted(new_required - old_required)]
    problems += [
        f"{name}.{field} changed type or constraints"
        for field in sorted(set(old_fields) & set(new_fields))
        if _shape(old_fields[field]) != _shape(new_fields[field])
    ]
    return problems


def _shape(schema: Any) -> Any:
    """The schema without its prose: what a validator checks."""
    if isinstance(schema, dict):
        return {key: _shape(value) for key, value in schema.items() if key not in _PROSE}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema
