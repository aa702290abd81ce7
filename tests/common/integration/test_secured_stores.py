"""The clients a service's Runtime builds reach a Redis and a MongoDB-wire server that demand TLS with client
certificates and credentials, and refuse to work with a wrong password: the settings of
parley_common.connections exercised over real sockets. Each server is started here on a free port with the
throw-away certificates (tests/common/conftest.py): Debian's redis-server (built with TLS) with an ACL user,
SecantusDB with SCRAM users and mutual TLS. The local Kafka-protocol broker speaks neither TLS nor SASL, so
Kafka's side is covered by tests/common/unit/test_connections.py only."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from secantus import SecantusDBServer

from parley_common.runtime import Runtime
from parley_common.settings import InfraSettings
from tests.common.conftest import Certificates

KEY = "k" * 32
REDIS_USER, REDIS_PASSWORD = "parley-router", "acl-user-password-from-a-secret"
MONGO_USER, MONGO_PASSWORD = "parley-contacts", "scram-password-from-a-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answers on {port}")


@pytest.fixture(scope="module")
def tls_redis(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """redis-server answering only TLS with a client certificate; the default user has another password and
    the ACL user ours."""
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.fail("redis-server is not installed; run deploy/local/bootstrap.sh")
    port = free_port()
    server = subprocess.Popen(
        [redis, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis")), "--tls-cert-file", str(certificates.server_cert),
         "--tls-key-file", str(certificates.server_key), "--tls-ca-cert-file", str(certificates.ca),
         "--tls-auth-clients", "yes", "--requirepass", "default-user-password",
         "--user", REDIS_USER, "on", f">{REDIS_PASSWORD}", "~*", "&*", "+@all"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def tls_mongo(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """SecantusDB with a SCRAM user (created before authentication is switched on: it has no localhost
    exception), then answering only TLS with a client certificate, and only authenticated commands."""
    storage = str(tmp_path_factory.mktemp("mongo"))
    setup = SecantusDBServer(port=0, storage_path=storage)
    setup.start()
    from pymongo import MongoClient  # the synchronous client: this fixture runs outside the event loop

    with MongoClient("127.0.0.1", setup.port, directConnection=True) as admin:
        admin.admin.command("createUser", MONGO_USER, pwd=MONGO_PASSWORD, roles=["readWriteAnyDatabase"])
    setup.stop()
    server = SecantusDBServer(port=0, storage_path=storage, require_auth=True,
                              tls_cert_file=str(certificates.server_cert), tls_key_file=str(certificates.server_key),
                              tls_ca_file=str(certificates.ca), tls_require_client_cert=True)
    server.start()
    try:
        yield server.port
    finally:
        server.stop()


def settings(**values: Any) -> InfraSettings:
    return InfraSettings(jwt_secret=KEY, namespace="secured", **values)  # type: ignore[arg-type]


def redis_settings(certificates: Certificates, port: int, password: str = REDIS_PASSWORD,
                   client_certificate: bool = True) -> InfraSettings:
    client = ({"redis_tls_cert_file": certificates.client_cert, "redis_tls_key_file": certificates.client_key}
              if client_certificate else {})
    return settings(redis_url=f"rediss://localhost:{port}/0", redis_username=REDIS_USER, redis_password=password,
                    redis_tls_ca_file=certificates.ca, **client)


async def test_redis_with_an_acl_user_over_mutual_tls(certificates: Certificates, tls_redis: int) -> None:
    runtime = Runtime("router", redis_settings(certificates, tls_redis), use_mongo=False, use_redis=True)
    try:
        await runtime.redis.set("secured:key", "value", ex=60)
        assert await runtime.redis.get("secured:key") == "value"
        assert await runtime.redis.acl_whoami() == REDIS_USER
    finally:
        await runtime.close()


@pytest.mark.parametrize(("wrong", "error"), [("password", "AuthenticationError"),
                                              ("client_certificate", "ConnectionError")])
async def test_redis_refuses_a_wrong_password_or_no_client_certificate(certificates: Certificates, tls_redis: int,
                                                                       wrong: str, error: str) -> None:
    chosen = (redis_settings(certificates, tls_redis, password="not-the-password") if wrong == "password"
              else redis_settings(certificates, tls_redis, client_certificate=False))
    runtime = Runtime("router", chosen, use_mongo=False, use_redis=True)
    try:
        with pytest.raises(Exception) as refused:
            await asyncio.wait_for(runtime.readiness()["redis"](), 10)
        assert type(refused.value).__name__ == error
    finally:
        await runtime.close()


def mongo_settings(certificates: Certificates, port: int, password: str = MONGO_PASSWORD) -> InfraSettings:
    return settings(mongo_uri=f"mongodb://localhost:{port}/?directConnection=true&retryWrites=false",
                    mongo_username=MONGO_USER, mongo_password=password, mongo_auth_source="admin",
                    mongo_tls_ca_file=certificates.ca, mongo_tls_cert_key_file=certificates.client_pem)


async def test_mongodb_with_scram_credentials_over_mutual_tls(certificates: Certificates, tls_mongo: int) -> None:
    runtime = Runtime("contacts", mongo_settings(certificates, tls_mongo), use_mongo=True, use_redis=False)
    try:
        await runtime.db["things"].insert_one({"_id": "a", "n": 1})
        assert await runtime.db["things"].find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    finally:
        await runtime.close()


async def test_mongodb_refuses_a_wrong_password(certificates: Certificates, tls_mongo: int) -> None:
    runtime = Runtime("contacts", mongo_settings(certificates, tls_mongo, password="not-the-password"),
                      use_mongo=True, use_redis=False)
    try:
        with pytest.raises(Exception) as refused:
            await runtime.readiness()["mongodb"]()
        assert type(refused.value).__name__ == "OperationFailure"
        assert getattr(refused.value, "code", None) == 18  # AuthenticationFailed
    finally:
        await runtime.close()

