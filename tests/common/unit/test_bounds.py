"""The shared bounds (parley_common.bounds), token claims and secret comparison, without a server."""

from __future__ import annotations

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from parley_common.auth import decode_token
from parley_common.bounds import BodySizeLimit, Identifier, IsoDatetime
from parley_common.digests import same_secret
from parley_common.errors import ApiError, install_error_handlers

IDS = TypeAdapter(Identifier)
TIMES = TypeAdapter(IsoDatetime)
SECRET = "k" * 32


@pytest.mark.parametrize("value", ["acme", "agent.dana", "ann@example.org", "+14155550123", "01234567890A=",
                                   "order num", "wa-main", "m_0f3a", "Zoë"])
def test_identifiers_take_what_ids_look_like(value: str) -> None:
    assert IDS.validate_python(value) == value


@pytest.mark.parametrize("value", ["", "a\x00b", "a\x01", "tab\there", "$where", "a$b", "x" * 129, "a\u202eb",
                                   "a\u2066b", "a\x7f"])
def test_identifiers_refuse_control_dollar_bidi_and_length(value: str) -> None:
    with pytest.raises(ValidationError):
        IDS.validate_python(value)


@pytest.mark.parametrize("value", ["2026-12-05T18:00:00Z", "2026-12-05T18:00:00+01:00", "2026-12-05T18:00:00.5-05:30"])
def test_times_take_iso_8601_with_an_offset(value: str) -> None:
    assert TIMES.validate_python(value).utcoffset() is not None


@pytest.mark.parametrize("value", ["0", "1700000000", 0, 1700000000.5, "2026-12-05T18:00:00", "tomorrow", "", None])
def test_times_refuse_numbers_and_times_without_an_offset(value: object) -> None:
    """pydantic alone reads "0" as 1970-01-01 (a schema-violating request accepted: schemathesis found it)."""
    with pytest.raises(ValidationError):
        TIMES.validate_python(value)


@given(st.text(max_size=300))
def test_an_identifier_is_either_valid_or_refused(value: str) -> None:
    try:
        IDS.validate_python(value)
    except ValidationError:
        return
    assert 1 <= len(value) <= 128 and "$" not in value


@pytest.mark.parametrize("claims", [{"roles": None}, {"roles": 5}, {"roles": "owner"}, {"roles": ["root"]},
                                    {"roles": [None]}, {"tenant": 5}, {"tenant": ""}, {"sub": "x" * 500},
                                    {"sub": {"a": 1}}, {"roles": ["agent"] * 100}])
def test_a_signed_token_with_bad_claims_is_401(claims: dict[str, object]) -> None:
    token = jwt.encode({"tenant": "acme", "sub": "ann", "roles": ["agent"], "exp": 2**40, **claims}, SECRET,
                       algorithm="HS256")
    with pytest.raises(ApiError) as refused:
        decode_token(SECRET, token)
    assert (refused.value.status, refused.value.code) == (401, "invalid_token")


def test_a_good_token_still_decodes() -> None:
    token = jwt.encode({"tenant": "acme", "sub": "ann", "roles": ["agent", "manager"], "exp": 2**40}, SECRET,
                       algorithm="HS256")
    principal = decode_token(SECRET, token)
    assert (principal.tenant_id, principal.login, sorted(principal.roles)) == ("acme", "ann", ["agent", "manager"])


def test_secrets_compare_whatever_the_caller_sent() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd")
    assert not same_secret("abc", "é\u00ff\ud800")  # non-ASCII and a lone surrogate: False, not TypeError


async def test_the_body_limit_refuses_by_length_and_while_streaming_and_spares_own_limits() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/json")
    @app.post("/own/upload")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    app.add_middleware(BodySizeLimit, max_bytes=1024, own_limits=("/own/",))

    async def chunks(total: int) -> object:
        for _ in range(total // 256):
            yield b"x" * 256

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/json", content=b"x" * 1024)).json() == {"size": 1024}
        declared = await client.post("/json", content=b"x" * 1025)
        streamed = await client.post("/json", content=chunks(4096))
        own = await client.post("/own/upload", content=b"x" * 4096)
    for refused in (declared, streamed):
        assert (refused.status_code, refused.json()["error"]["code"]) == (413, "payload_too_large")
    assert own.json() == {"size": 4096}
