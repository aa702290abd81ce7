"""Every service's OpenAPI document tells what the service answers: the `bearer` scheme on secured operations, and
on every operation the error statuses it can answer whatever the route (401/403 when secured, 503 with
Retry-After when a store or the broker it needs is away, 404 for a path naming something, 422 for anything it
validates), each with the `ErrorEnvelope` body the services send — also in
place of FastAPI's own 422 schema, which is not what they answer. Route-specific statuses (409, 410, 413…) are
declared on the route (`documented_errors`); a route's own text for a status wins over the generic one."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security.base import SecurityBase

from parley_common.errors import AUTHENTICATED_ERRORS, RETRY_AFTER_HEADER, ErrorEnvelope

ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"
FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _tree(dependant: Dependant) -> list[Dependant]:
    return [dependant, *(node for child in dependant.dependencies for node in _tree(child))]


def generic_errors(route: APIRoute | RouteContext) -> dict[int, str]:
    """The error statuses any route of this shape answers."""
    nodes = _tree(route.dependant)
    errors: dict[int, str] = {}
    if any(isinstance(node.call, SecurityBase) for node in nodes):
        errors.update({status: AUTHENTICATED_ERRORS[status] for status in (401, 403, 503)})
    if any(node.path_params for node in nodes):
        errors[404] = "not_found (or the thing the path names is not the caller's to see)"
    if any(node.body_params for node in nodes):
        errors[400] = "malformed_body (the body is not the JSON it must be)"
        errors[413] = "payload_too_large (the body is over the service's limit)"
    if any(node.path_params or node.query_params or node.header_params or node.body_params for node in nodes):
        errors[422] = AUTHENTICATED_ERRORS[422]
    return errors


def _error_response(status: int, description: str) -> dict[str, Any]:
    return {"description": f"`error.code`: {description}",
            "content": {"application/json": {"schema": {"$ref": ENVELOPE_REF}}},
            **({"headers": RETRY_AFTER_HEADER} if status == 503 else {})}


def _document_errors(operation: dict[str, Any], errors: dict[int, str]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, description in errors.items():
        known = responses.get(str(status))
        if known is None or FASTAPI_VALIDATION_REF in str(known):
            responses[str(status)] = _error_response(status, description)


def truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's document with the additions above (built once, like FastAPI's own)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorEnvelope"] = envelope
    for route in iter_route_contexts(app.routes):  # FastAPI's own walk: included routers with their prefixes
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _document_errors(operation, generic_errors(route))
    if FASTAPI_VALIDATION_REF not in str(schema["paths"]):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


def install(app: FastAPI) -> None:
    app.openapi = lambda: truthful_openapi(app)  # type: ignore[method-assign]
