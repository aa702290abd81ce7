"""Rotating the token key over HTTP: a service configured from the environment with a new key and the previous
one accepts tokens of both, and after the previous key is dropped refuses the old ones (docs/operations.md)."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import APIRouter, Depends

from parley_common.auth import Principal, Role, issue_token, require_roles
from parley_common.service import build_service
from parley_common.settings import InfraSettings

OLD = "old-token-key-of-at-least-32-characters"
NEW = "new-token-key-of-at-least-32-characters"


def app_with_keys(monkeypatch: pytest.MonkeyPatch, current: str, previous: list[str]) -> object:
    monkeypatch.setenv("PARLEY_JWT_SECRET", current)
    monkeypatch.setenv("PARLEY_JWT_PREVIOUS_SECRETS", json.dumps(previous))
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(principal: Principal = Depends(require_roles(Role.AGENT))) -> dict[str, str]:
        return {"login": principal.login}

    return build_service(service="probe", title="probe", infra=InfraSettings(), routers=[router], readiness={})


async def answers(app: object, *tokens: str) -> list[int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:  # type: ignore[arg-type]
        return [(await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})).status_code
                for token in tokens]


async def test_tokens_of_the_previous_key_work_until_it_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    by_old, by_new = (issue_token(key, "acme", "alice", ["agent"]) for key in (OLD, NEW))
    assert await answers(app_with_keys(monkeypatch, OLD, []), by_old, by_new) == [200, 401]
    assert await answers(app_with_keys(monkeypatch, NEW, [OLD]), by_old, by_new) == [200, 200]
    assert await answers(app_with_keys(monkeypatch, NEW, []), by_old, by_new) == [401, 200]


def test_a_short_previous_key_stops_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_JWT_SECRET", NEW)
    monkeypatch.setenv("PARLEY_JWT_PREVIOUS_SECRETS", json.dumps(["short"]))
    with pytest.raises(ValueError, match="at least 32 characters"):
        InfraSettings()
