"""The OpenAPI document of a service says what it answers: the bearer scheme on secured operations, every generic
error status with the error body the services send, a route's own statuses kept, and 405 naming every method."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from parley_common.auth import Principal, Role, require_roles
from parley_common.errors import documented_errors, install_error_handlers
from parley_common.openapi import ENVELOPE_REF, install

Caller = Annotated[Principal, Depends(require_roles(Role.AGENT))]


class Note(BaseModel):
    text: str


def app_with_routes() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install(app)
    router = APIRouter(prefix="/v1/notes")

    @router.put("/{note_id}", responses=documented_errors({409: "note_taken"}))
    async def put(note_id: str, note: Note, who: Caller) -> dict[str, Any]:
        return {}

    @router.get("/{note_id}")
    async def get(note_id: str, who: Caller) -> dict[str, Any]:
        return {}

    @router.get("/public/ping")
    async def ping() -> dict[str, str]:
        return {}

    app.include_router(router)
    return app


def test_secured_operations_declare_the_bearer_scheme_and_every_error_status_with_the_error_body() -> None:
    doc = app_with_routes().openapi()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "JWT (HS256) with `tenant`, `sub` (the user's login) and "
                                                          "`roles`"}
    put = doc["paths"]["/v1/notes/{note_id}"]["put"]
    assert put["security"] == [{"bearer": []}]
    assert sorted(put["responses"]) == ["200", "400", "401", "403", "404", "409", "413", "422", "503"]
    for status in ("400", "401", "403", "404", "409", "413", "422", "503"):
        assert put["responses"][status]["content"]["application/json"]["schema"] == {"$ref": ENVELOPE_REF}
    assert "note_taken" in put["responses"]["409"]["description"]  # the route's own text is kept
    get = doc["paths"]["/v1/notes/{note_id}"]["get"]
    assert sorted(get["responses"]) == ["200", "401", "403", "404", "422", "503"]
    for unavailable in (put["responses"]["503"], get["responses"]["503"]):  # a store or the broker away
        assert "cache_unavailable" in unavailable["description"] and "Retry-After" in unavailable["headers"]
    ping = doc["paths"]["/v1/notes/public/ping"]["get"]
    assert "security" not in ping and sorted(ping["responses"]) == ["200"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_a_method_not_allowed_names_every_method_of_the_path() -> None:
    response = TestClient(app_with_routes()).delete("/v1/notes/n1")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PUT"}
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_concrete_path_names_its_own_methods_not_those_of_a_template_it_also_matches() -> None:
    app = app_with_routes()

    @app.get("/v1/notes/labels")
    async def labels() -> dict[str, Any]:
        return {}

    response = TestClient(app).patch("/v1/notes/labels")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
