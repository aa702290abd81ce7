"""Settings → client keyword arguments: TLS and credentials of Kafka, MongoDB and Redis reach every client the
services build, and a half-configured combination stops the service at start."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from parley_common.connections import kafka_client_options, mongo_client_options, redis_client_options
from parley_common.runtime import Runtime
from parley_common.service import asyncapi_document
from parley_common.settings import InfraSettings, describe_validation_error
from tests.common.conftest import Certificates

KEY = "k" * 32


def infra(**values: Any) -> InfraSettings:
    return InfraSettings(jwt_secret=KEY, **values)


def scram(certificates: Certificates, **more: Any) -> InfraSettings:
    return infra(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="parley-router", kafka_sasl_password="pw-from-the-kafkauser-secret",
                 kafka_ssl_ca_file=certificates.ca, **more)


def test_the_defaults_are_plaintext_without_credentials() -> None:
    settings = infra()
    assert kafka_client_options(settings) == {}
    assert mongo_client_options(settings) == {}
    assert redis_client_options(settings) == {}


def test_scram_over_tls_as_strimzi_issues_it(certificates: Certificates) -> None:
    options = kafka_client_options(scram(certificates))
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "parley-router", "sasl_plain_password": "pw-from-the-kafkauser-secret"}
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "parley-test-ca"),),)]


def test_mutual_tls_as_a_strimzi_tls_user(certificates: Certificates) -> None:
    options = kafka_client_options(infra(kafka_security_protocol="SSL", kafka_ssl_ca_file=certificates.ca,
                                         kafka_ssl_cert_file=certificates.client_cert,
                                         kafka_ssl_key_file=certificates.client_key))
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


def test_every_kafka_client_of_a_service_gets_the_security(certificates: Certificates) -> None:
    """The broker's producer and the consumers it builds, and the AsyncAPI document names the scheme."""
    runtime = Runtime("router", scram(certificates), use_mongo=False, use_redis=False)
    producer = runtime.broker._connection_kwargs
    consumers = runtime.broker.config.broker_config.builder.keywords
    for options in (producer, consumers):
        assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    document = asyncapi_document(runtime.broker, "router")
    server = next(iter(document["servers"].values()))
    assert server["protocol"] == "kafka-secure"
    assert document["components"]["securitySchemes"] == {"scram512": {"type": "scramSha512"}}


def test_mongodb_tls_and_credentials_of_their_own(certificates: Certificates) -> None:
    settings = infra(mongo_username="parley-contacts", mongo_password="pw", mongo_auth_source="admin",
                     mongo_tls_ca_file=certificates.ca, mongo_tls_cert_key_file=certificates.client_pem)
    assert mongo_client_options(settings) == {
        "username": "parley-contacts", "password": "pw", "authSource": "admin", "tls": True,
        "tlsCAFile": str(certificates.ca), "tlsCertificateKeyFile": str(certificates.client_pem)}


def test_redis_acl_user_over_tls(certificates: Certificates) -> None:
    settings = infra(redis_url="rediss://redis.redis.svc:6379/0", redis_username="parley-router",
                     redis_password="pw", redis_tls_ca_file=certificates.ca,
                     redis_tls_cert_file=certificates.client_cert, redis_tls_key_file=certificates.client_key)
    assert redis_client_options(settings) == {
        "username": "parley-router", "password": "pw", "ssl_cert_reqs": "required", "ssl_check_hostname": True,
        "ssl_ca_certs": str(certificates.ca), "ssl_certfile": str(certificates.client_cert),
        "ssl_keyfile": str(certificates.client_key)}


def test_a_password_alone_is_the_default_users() -> None:
    assert redis_client_options(infra(redis_password="pw")) == {"password": "pw"}


def _refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        infra(**values)
    return describe_validation_error(refused.value, "PARLEY_")


@pytest.mark.parametrize(("values", "named"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "PARLEY_KAFKA_SECURITY_PROTOCOL SASL_SSL needs"),
    ({"kafka_sasl_username": "u", "kafka_sasl_password": "p", "kafka_sasl_mechanism": "SCRAM-SHA-512"},
     "PARLEY_KAFKA_SASL_* are set but PARLEY_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u", "kafka_sasl_password": "p",
      "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_ssl_ca_file": "CA"},
     "PARLEY_KAFKA_SSL_* files are set but PARLEY_KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "CERT"},
     "PARLEY_KAFKA_SSL_CERT_FILE and PARLEY_KAFKA_SSL_KEY_FILE go together"),
    ({"mongo_username": "u"}, "PARLEY_MONGO_USERNAME and PARLEY_MONGO_PASSWORD go together"),
    ({"mongo_tls_cert_key_file": "PEM"}, "PARLEY_MONGO_TLS_CERT_KEY_FILE needs PARLEY_MONGO_TLS_CA_FILE"),
    ({"redis_username": "u"}, "PARLEY_REDIS_USERNAME needs PARLEY_REDIS_PASSWORD"),
    ({"redis_tls_ca_file": "CA"}, "PARLEY_REDIS_TLS_* files need a rediss:// PARLEY_REDIS_URL"),
    ({"redis_url": "rediss://r:6379", "redis_tls_key_file": "KEY"},
     "PARLEY_REDIS_TLS_CERT_FILE and PARLEY_REDIS_TLS_KEY_FILE go together"),
])
def test_a_half_configured_connection_is_refused(certificates: Certificates, values: dict[str, Any],
                                                 named: str) -> None:
    files = {"CA": certificates.ca, "CERT": certificates.client_cert, "KEY": certificates.client_key,
             "PEM": certificates.client_pem}
    refusal = _refusal(**{key: files.get(value, value) for key, value in values.items()})
    assert refusal.startswith("invalid settings: Value error, ")
    assert named in refusal


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    refusal = _refusal(kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path / "absent.crt")
    assert refusal == "invalid setting PARLEY_KAFKA_SSL_CA_FILE: Path does not point to a file"
