"""HTTP errors with a machine-readable code: {"error": {"code": …, "message": …, "details": …}}."""

from __future__ import annotations

from typing import Any

import structlog
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

log = structlog.get_logger(__name__)
# A request that met a slow or absent store or broker is answered 503 with this Retry-After (seconds).
RETRY_AFTER_SECONDS = 5


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
                        422: "validation_failed (details: field, message, type)",
                        503: "database_unavailable, cache_unavailable, broker_unavailable: a store or the broker "
                             "failed or did not answer in time (details: dependency); try again after `Retry-After` "
                             "seconds — a write may have been done (a send: retry with the same Idempotency-Key)"}
RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait before trying again",
                                      "schema": {"type": "integer"}}}


def documented_errors(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of an authenticated route: per status, the codes it answers besides those every such
    route answers (AUTHENTICATED_ERRORS; a status given here replaces its text). The body is always
    `ErrorEnvelope` (FastAPI's own 422 schema is not what these services answer)."""
    merged = {**AUTHENTICATED_ERRORS, **codes}
    return {status: {"model": ErrorEnvelope, "description": f"`error.code`: {text}",
                     **({"headers": RETRY_AFTER_HEADER} if status == 503 else {})}
            for status, text in sorted(merged.items())}


def unavailable_dependency(exc: BaseException) -> str | None:
    """Which dependency a passing failure is of — `database`, `cache` or `broker` — or None when `exc` is no
    such failure (a bug, or an error that would repeat on every retry: those are never a 503)."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout) or (isinstance(exc, PyMongoError) and exc.timeout):
        return "database"  # ConnectionFailure: server selection, network time-outs, an exhausted pool
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "cache"
    if isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, KafkaTimeoutError | KafkaConnectionError)):
        return "broker"
    return None


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None  # as documented_errors says
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=retry)

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        dependency = unavailable_dependency(exc)
        if dependency is None:
            raise exc  # a 500, logged with its traceback: a bug to fix, not a state to retry
        log.warning("dependency_unavailable", dependency=dependency, error=type(exc).__name__,
                    method=request.method, path=request.url.path)
        return JSONResponse(error_body(f"{dependency}_unavailable", f"the {dependency} failed or did not answer in "
                                       "time; try again later", {"dependency": dependency}),
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    for failure in (PyMongoError, RedisError, KafkaError):
        app.add_exception_handler(failure, _unavailable)

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
