"""Settings: one pydantic-settings class per service (env prefix PARLEY_<SVC>_) holding the shared
infrastructure settings (env prefix PARLEY_). A bad value stops the process with one line naming it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_common.connections import Connections

MIN_KEY_LENGTH = 32


def _long_enough(key: SecretStr) -> SecretStr:
    if len(key.get_secret_value()) < MIN_KEY_LENGTH:
        raise ValueError(f"a key needs at least {MIN_KEY_LENGTH} characters (e.g. `openssl rand -hex 32`)")
    return key


# An HMAC key from the environment. Never given a default: a service without its keys refuses to start
# (a built-in key is public, and lets anyone mint tokens or download links).
Key = Annotated[SecretStr, AfterValidator(_long_enough)]


class InfraSettings(Connections):
    """Shared by every service (env prefix PARLEY_): where the broker, database and cache are and how to reach
    them (parley_common.connections), the namespace, the token key, logging."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    instance_id: str = Field(
        default="", pattern=r"^[a-zA-Z0-9._-]{0,200}$",
        description="this replica's name, stable across its restarts and unique among the service's replicas (the "
                    "pod's name): a replica restarted after a crash makes its dead predecessor's consumers leave "
                    "their groups and takes their partitions back at once (parley_common.rejoin); empty: it waits "
                    "for the broker to expire them")
    namespace: str = Field(
        default="",
        pattern=r"^[a-zA-Z0-9_-]*$",
        description="isolates a deployment on shared infrastructure: topic prefix, Redis key prefix, database suffix",
    )
    channels_file: Path = Path(".run/channels.yaml")
    jwt_secret: Key = Field(description="HS256 key that signs bearer tokens (and verifies them)")
    jwt_previous_secrets: list[Key] = Field(
        default_factory=list, max_length=4,
        description="earlier token keys still accepted until the tokens they signed expire (a JSON list; "
                    "docs/operations.md: rotating secrets)")
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024,
                                        description="JSON request bodies (webhooks and uploads have their own limits)")
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    log_json: bool | None = None
    count_round_trips: bool = Field(default=False, description="counting mode: database and cache round trips and "
                                    "Kafka records produced, on /metrics (parley_common.round_trips)")

    def database_name(self, service: str) -> str:
        return f"parley_{service}_{self.namespace}" if self.namespace else f"parley_{service}"

    def redis_prefix(self) -> str:
        return f"{self.namespace}:" if self.namespace else ""


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set env_prefix PARLEY_<SVC>_."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    infra: InfraSettings = Field(default_factory=InfraSettings)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], program: str) -> S:
    try:
        return cls()
    except ValidationError as exc:
        # The shared InfraSettings is built inside the service's settings; name its variable, not a nested one.
        failing = InfraSettings if exc.title == InfraSettings.__name__ else cls
        fail_start(program, describe_validation_error(exc, str(failing.model_config.get("env_prefix", ""))))


def describe_validation_error(exc: ValidationError, env_prefix: str = "") -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if not field:  # a rule across settings (parley_common.connections): its message names the variables
        return f"invalid settings: {first['msg']}{more}"
    name = f"{env_prefix}{field}".upper() if env_prefix else field
    return f"invalid setting {name}: {first['msg']}{more}"


def fail_start(program: str, reason: str) -> NoReturn:
    print(f"{program}: refusing to start: {reason}", file=sys.stderr)
    raise SystemExit(2)
