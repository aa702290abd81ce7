"""Logging put back after a test that configured it, and a throw-away certificate authority for the TLS tests:
a CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the openssl command line
(present wherever Debian's redis-server is)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from structlog.contextvars import clear_contextvars


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_pem: Path  # certificate and key in one file (MongoDB's tlsCertificateKeyFile)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, subject: str, extensions: str, cwd: Path) -> None:
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
             "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (Debian package openssl)")
    where = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=parley-test-ca", cwd=where)
    _signed("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            where)
    _signed("client", "/CN=parley-test-client", "extendedKeyUsage=clientAuth\n", where)
    pem = where / "client.pem"
    pem.write_text((where / "client.crt").read_text() + (where / "client.key").read_text())
    return Certificates(where / "ca.crt", where / "server.crt", where / "server.key", where / "client.crt",
                        where / "client.key", pem)


@pytest.fixture
def restores_logging() -> Iterator[None]:
    """For a test that calls configure_logging (directly or through a service's start): it binds pytest's captured
    stderr, which closes after the test, and the service's name into the context; both are undone afterwards."""
    yield
    clear_contextvars()
    structlog.reset_defaults()
    logging.basicConfig(stream=sys.__stderr__, force=True)
