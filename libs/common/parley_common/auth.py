"""Bearer tokens (JWT, HS256): `tenant`, `sub` (the user's login) and `roles`.

A token names the key that signed it in its `kid` header (a fingerprint of the key, not the key); a service
accepts its current key and the previous ones it still lists, so the key is rotated without logging anyone out
(docs/operations.md: rotating secrets)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parley_common.bounds import Identifier
from parley_common.errors import ApiError


class Role(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    AGENT = "agent"
    INTEGRATION = "integration"


MANAGERS = (Role.OWNER, Role.MANAGER)


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    login: str
    roles: frozenset[Role]

    def has_any(self, roles: tuple[Role, ...]) -> bool:
        return bool(self.roles.intersection(roles))


def key_id(secret: str) -> str:
    """The `kid` of tokens signed with `secret`: a one-way fingerprint, stable for the key's lifetime."""
    return hashlib.sha256(b"parley-jwt-kid:" + secret.encode()).hexdigest()[:16]


def issue_token(secret: str, tenant_id: str, login: str, roles: list[str], ttl: timedelta = timedelta(hours=12),
                now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {"tenant": tenant_id, "sub": login, "roles": roles, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": key_id(secret)})


def _verification_keys(secret: str, previous: Sequence[str], token: str) -> list[str]:
    """The key its `kid` names among the accepted ones; every accepted key for a token without `kid` (issued
    before tokens carried one, or by another issuer sharing the key); none for a key no longer accepted."""
    accepted = [secret, *previous]
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise ApiError(401, "invalid_token", "the bearer token is not valid") from None
    if kid is None:
        return accepted
    return [key for key in accepted if key_id(key) == kid]


class TokenClaims(BaseModel):
    """The claims a principal is made of; anything else in the token is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    tenant: Identifier
    sub: Identifier
    roles: tuple[Role, ...] = Field(default=(), max_length=16)


def decode_token(secret: str, token: str, previous: Sequence[str] = ()) -> Principal:
    """The principal of a token signed with `secret` (the current key) or one of the `previous` keys."""
    claims = None
    for key in _verification_keys(secret, previous, token):
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub", "tenant"]})
            break
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token_expired", "the bearer token has expired") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError:
            raise ApiError(401, "invalid_token", "the bearer token is not valid") from None
    if claims is None:
        raise ApiError(401, "invalid_token", "the bearer token is not valid")
    try:
        valid = TokenClaims.model_validate(claims)
    except ValidationError:  # a correctly signed token can still carry `roles: null`, `roles: 5`, a 10 kB login…
        raise ApiError(401, "invalid_token", "the bearer token's tenant, sub or roles are not valid") from None
    return Principal(tenant_id=valid.tenant, login=valid.sub, roles=frozenset(valid.roles))


# Declared through FastAPI's security classes so every secured operation says so in its OpenAPI document (the
# `bearer` scheme); auto_error=False: a missing or non-bearer header is answered by us, 401 in our error body.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="JWT (HS256) with `tenant`, `sub` (the user's login) and `roles`")


def current_principal(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or not credentials.credentials.strip():
        raise ApiError(401, "unauthorized", "a bearer token is required", None)
    secret: str = request.app.state.jwt_secret
    previous: tuple[str, ...] = request.app.state.jwt_previous_secrets
    return decode_token(secret, credentials.credentials.strip(), previous)


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A FastAPI dependency: the caller's principal, if it holds one of `roles`; 403 otherwise."""

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Security(BEARER)) -> Principal:
        principal = current_principal(request, credentials)
        if roles and not principal.has_any(roles):
            allowed = ", ".join(role.value for role in roles)
            raise ApiError(403, "forbidden", f"this action needs one of the roles: {allowed}")
        return principal

    return dependency
