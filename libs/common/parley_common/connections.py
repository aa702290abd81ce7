"""How the clients reach Kafka, MongoDB and Redis: TLS (a CA, a client certificate) and credentials, as settings
(env prefix PARLEY_, part of InfraSettings) and as the keyword arguments of each client factory.

Kafka speaks Kafka's own vocabulary: `PARLEY_KAFKA_SECURITY_PROTOCOL` PLAINTEXT, SSL (mutual TLS when a client
certificate is given: Strimzi's `tls` KafkaUser), SASL_PLAINTEXT or SASL_SSL (Strimzi's `scram-sha-512`
KafkaUser). An inconsistent combination (a password without SASL, a certificate without TLS, a key without its
certificate, a file that is not there) stops the service at start, like any bad setting: a half-applied security
setting would otherwise fall back to plaintext or fail only at the first connection."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, Self

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
_SASL = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}


class Connections(BaseSettings):
    """Where the broker, database and cache are, and how to reach them: the base of InfraSettings (env prefix
    PARLEY_). Every security field is optional: the defaults are the local servers' plaintext."""

    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_idle_fetch_backoff_ms: int = Field(
        default=40, ge=0, le=1000,
        description="longest pause after empty fetches (from 5 ms, doubling while idle): the most a record arriving "
                    "at an idle consumer waits (the local broker does not long-poll; see "
                    "kafka_seams.pace_idle_fetches)")
    mongo_uri: str = "mongodb://127.0.0.1:27117/?retryWrites=false&directConnection=true"
    redis_url: str = "redis://127.0.0.1:16379/0"

    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    kafka_ssl_ca_file: FilePath | None = None  # the cluster CA (Strimzi: <cluster>-cluster-ca-cert, ca.crt)
    kafka_ssl_cert_file: FilePath | None = None  # mutual TLS (Strimzi tls KafkaUser: user.crt)
    kafka_ssl_key_file: FilePath | None = None  # (user.key)
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None  # Strimzi: the KafkaUser's name
    kafka_sasl_password: SecretStr | None = None  # Strimzi: the KafkaUser's Secret, key `password`

    mongo_username: str | None = None  # instead of credentials in PARLEY_MONGO_URI (a Secret key of their own)
    mongo_password: SecretStr | None = None
    mongo_auth_source: str | None = None  # the database holding the user (MongoDB's default: admin)
    mongo_tls_ca_file: FilePath | None = None  # turns TLS on
    mongo_tls_cert_key_file: FilePath | None = None  # x.509 client certificate and key in one PEM file

    redis_username: str | None = None  # an ACL user (Redis 6+); without it the password is the default user's
    redis_password: SecretStr | None = None
    redis_tls_ca_file: FilePath | None = None  # needs a rediss:// URL
    redis_tls_cert_file: FilePath | None = None  # client certificate (tls-auth-clients yes)
    redis_tls_key_file: FilePath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problem = _kafka_problem(self) or _redis_problem(self)
        if problem is None and (self.mongo_username is None) != (self.mongo_password is None):
            problem = "PARLEY_MONGO_USERNAME and PARLEY_MONGO_PASSWORD go together"
        if problem is None and self.mongo_tls_cert_key_file and not self.mongo_tls_ca_file:
            problem = "PARLEY_MONGO_TLS_CERT_KEY_FILE needs PARLEY_MONGO_TLS_CA_FILE (TLS on)"
        if problem:
            raise ValueError(problem)
        return self


def _kafka_problem(settings: Connections) -> str | None:
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    credentials = (settings.kafka_sasl_mechanism, settings.kafka_sasl_username, settings.kafka_sasl_password)
    if sasl and None in credentials:
        return (f"PARLEY_KAFKA_SECURITY_PROTOCOL {protocol} needs PARLEY_KAFKA_SASL_MECHANISM, "
                "PARLEY_KAFKA_SASL_USERNAME and PARLEY_KAFKA_SASL_PASSWORD")
    if not sasl and any(value is not None for value in credentials):
        return f"PARLEY_KAFKA_SASL_* are set but PARLEY_KAFKA_SECURITY_PROTOCOL is {protocol}"
    tls_files = (settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file)
    if not protocol.endswith("SSL") and any(tls_files):
        return f"PARLEY_KAFKA_SSL_* files are set but PARLEY_KAFKA_SECURITY_PROTOCOL is {protocol}"
    if (settings.kafka_ssl_cert_file is None) != (settings.kafka_ssl_key_file is None):
        return "PARLEY_KAFKA_SSL_CERT_FILE and PARLEY_KAFKA_SSL_KEY_FILE go together"
    return None


def _redis_problem(settings: Connections) -> str | None:
    if (settings.redis_tls_cert_file is None) != (settings.redis_tls_key_file is None):
        return "PARLEY_REDIS_TLS_CERT_FILE and PARLEY_REDIS_TLS_KEY_FILE go together"
    if settings.redis_username is not None and settings.redis_password is None:
        return "PARLEY_REDIS_USERNAME needs PARLEY_REDIS_PASSWORD"
    tls_files = settings.redis_tls_ca_file or settings.redis_tls_cert_file
    if tls_files and not settings.redis_url.startswith("rediss://"):
        # a redis:// URL would ignore them and send the password in the clear
        return "PARLEY_REDIS_TLS_* files need a rediss:// PARLEY_REDIS_URL"
    return None


def tls_context(ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None) -> ssl.SSLContext:
    """Verifies the server's certificate and host name against `ca_file` (the system's CAs without one) and
    presents the client certificate when given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def kafka_security(settings: Connections) -> BaseSecurity | None:
    """FastStream's security object for the broker (it also names the scheme in the AsyncAPI document)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = (tls_context(settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file)
               if protocol.endswith("SSL") else None)
    if not protocol.startswith("SASL_"):
        return BaseSecurity(ssl_context=context)
    assert settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password
    return _SASL[settings.kafka_sasl_mechanism](settings.kafka_sasl_username,
                                                settings.kafka_sasl_password.get_secret_value(),
                                                ssl_context=context, use_ssl=context is not None)


def kafka_client_options(settings: Connections) -> dict[str, Any]:
    """The same as aiokafka keyword arguments (admin clients, plain consumers)."""
    return parse_security(kafka_security(settings))


def mongo_client_options(settings: Connections) -> dict[str, Any]:
    """PyMongo keyword arguments; they win over the same options in PARLEY_MONGO_URI."""
    options: dict[str, Any] = {}
    if settings.mongo_username is not None and settings.mongo_password is not None:
        options |= {"username": settings.mongo_username, "password": settings.mongo_password.get_secret_value()}
    if settings.mongo_auth_source:
        options["authSource"] = settings.mongo_auth_source
    if settings.mongo_tls_ca_file:
        options |= {"tls": True, "tlsCAFile": str(settings.mongo_tls_ca_file)}
    if settings.mongo_tls_cert_key_file:
        options["tlsCertificateKeyFile"] = str(settings.mongo_tls_cert_key_file)
    return options


def redis_client_options(settings: Connections) -> dict[str, Any]:
    """redis-py keyword arguments for a connection pool of `settings.redis_url` (parley_common.redis)."""
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_tls_ca_file or settings.redis_tls_cert_file:
        options |= {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
        if settings.redis_tls_ca_file:
            options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
        if settings.redis_tls_cert_file:
            options |= {"ssl_certfile": str(settings.redis_tls_cert_file),
                        "ssl_keyfile": str(settings.redis_tls_key_file)}
    return options
