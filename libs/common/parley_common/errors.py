"""HTTP errors with a machine-readable code: {"error": {"code": …, "message": …, "details": …}}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. no_pending_offer")
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    """Every error answer of every service."""

    error: ErrorDetail


AUTHENTICATED_ERRORS = {401: "unauthorized, invalid_token, token_expired", 403: "forbidden (not the caller's role)",
                        422: "validation_failed (details: field, message, type)"}


def documented_errors(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of an authenticated route: per status, the codes it answers besides those every such
    route answers (AUTHENTICATED_ERRORS; a status given here replaces its text). The body is always
    `ErrorEnvelope` (FastAPI's own 422 schema is not what these services answer)."""
    merged = {**AUTHENTICATED_ERRORS, **codes}
    return {status: {"model": ErrorEnvelope, "description": f"`error.code`: {text}"}
            for status, text in sorted(merged.items())}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        return JSONResponse(error_body("validation_failed", "the request is not valid", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                403: "forbidden", 413: "payload_too_large"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the methods of one route; the path may have several
            headers["Allow"] = ", ".join(sorted(allowed_methods(request.app, request.url.path)))
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers)


def allowed_methods(app: FastAPI, path: str) -> set[str]:
    """The methods of the documented path that `path` stands for: as in OpenAPI, a concrete path wins over a
    templated one (`/v1/contacts/labels` is not `/v1/contacts/{contact_id}`), so the fewest parameters win."""
    by_template: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        template = route.path_format or ""
        if isinstance(route.original_route, APIRoute) and compile_path(template)[0].match(path):
            by_template.setdefault(template, set()).update(route.methods or ())
    if not by_template:
        return set()
    return by_template[min(by_template, key=lambda template: template.count("{"))]
