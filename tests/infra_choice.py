"""Which servers the test suite runs against: `PARLEY_TEST_INFRA` = `local` (the default: the wire-protocol
servers deploy/local/infra.py starts, no Docker needed), `containers` (Apache Kafka, MongoDB and Redis from their
official images through testcontainers, tests/infra_containers.py; refuses to run without a Docker engine) or `auto`
(containers when a Docker engine answers, else local). Pure apart from one ping of the engine.

`python tests/infra_choice.py` prints the choice (deploy/local/test.sh asks it) or exits 2 with the reason."""

from __future__ import annotations

import http.client
import os
import socket
import sys
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

LOCAL, CONTAINERS, AUTO = "local", "containers", "auto"
SETTING = "PARLEY_TEST_INFRA"
DEFAULT_SOCKET = "/var/run/docker.sock"


class InfraChoiceError(Exception):
    """The setting is not understood, or asks for containers where no Docker engine answers."""


def choose(setting: str | None, docker_answers: Callable[[], bool]) -> str:
    wanted = (setting or LOCAL).strip().lower()
    if wanted == LOCAL:
        return LOCAL
    if wanted not in (CONTAINERS, AUTO):
        raise InfraChoiceError(f"{SETTING}={setting!r}: expected {LOCAL}, {CONTAINERS} or {AUTO}")
    if docker_answers():
        return CONTAINERS
    if wanted == AUTO:
        return LOCAL
    raise InfraChoiceError(f"{SETTING}={CONTAINERS} but no Docker engine answers at {docker_address(os.environ)} "
                           "(set DOCKER_HOST, or start the engine; PARLEY_TEST_INFRA=auto falls back to local)")


def docker_address(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker_answers(address: str, timeout: float = 2.0) -> bool:
    """True when the Docker engine at `address` (unix:// or tcp://, as DOCKER_HOST is written) answers its
    `/_ping` with 200. Engines behind TLS or ssh are not probed (and so not used)."""
    parts = urlsplit(address)
    if parts.scheme == "unix":
        connection: http.client.HTTPConnection = _UnixConnection(parts.path, timeout)
    elif parts.scheme in ("tcp", "http"):
        connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 2375, timeout=timeout)
    else:
        return False
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main() -> int:
    try:
        print(choose(os.environ.get(SETTING), lambda: docker_answers(docker_address(os.environ))))
    except InfraChoiceError as problem:
        print(f"test infrastructure: {problem}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
