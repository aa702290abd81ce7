"""Which servers the suite runs against (tests/infra_choice.py) and how the container path is wired
(tests/infra_containers.py). No Docker engine here: the choice is tested against stand-in engines answering over
real sockets, the containers' configuration as data; starting real containers was not exercised."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from socketserver import UnixStreamServer

import infra_choice
import infra_containers
import pytest
import yaml

from parley_common.settings import InfraSettings
from parley_common.topics import ALL_TOPICS

REPO = Path(__file__).resolve().parents[3]


class _Engine(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/_ping" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args: object) -> None:
        pass


class _UnixHTTPServer(UnixStreamServer):
    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        request, _ = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


def _serve(server: HTTPServer | _UnixHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def unix_engine(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "docker.sock"
    yield from (f"unix://{path}" for _ in _serve(_UnixHTTPServer(str(path), _Engine)))


@pytest.fixture
def tcp_engine() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Engine)
    yield from (f"tcp://127.0.0.1:{server.server_address[1]}" for _ in _serve(server))


def test_the_setting_chooses_local_containers_or_what_the_engine_allows() -> None:
    up, down = (lambda: True), (lambda: False)
    assert infra_choice.choose(None, up) == infra_choice.choose("", up) == infra_choice.choose("local", up) == "local"
    assert infra_choice.choose("containers", up) == infra_choice.choose(" Containers ", up) == "containers"
    assert infra_choice.choose("auto", up) == "containers" and infra_choice.choose("auto", down) == "local"
    with pytest.raises(infra_choice.InfraChoiceError, match="no Docker engine answers"):
        infra_choice.choose("containers", down)
    with pytest.raises(infra_choice.InfraChoiceError, match="expected local, containers or auto"):
        infra_choice.choose("docker", up)


def test_local_never_asks_the_engine() -> None:
    def must_not_ping() -> bool:
        raise AssertionError("pinged")

    assert infra_choice.choose("local", must_not_ping) == "local"


def test_an_engine_answers_on_a_unix_socket_or_tcp(unix_engine: str, tcp_engine: str, tmp_path: Path) -> None:
    assert infra_choice.docker_answers(unix_engine) and infra_choice.docker_answers(tcp_engine)
    assert not infra_choice.docker_answers(f"unix://{tmp_path}/absent.sock")
    assert not infra_choice.docker_answers("ssh://user@somewhere")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert not infra_choice.docker_answers(f"tcp://127.0.0.1:{port}", timeout=0.5)


def test_an_engine_that_answers_badly_does_not_count(tcp_engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Engine, "status", 500)
    assert not infra_choice.docker_answers(tcp_engine)


def test_the_address_is_docker_host_or_the_default_socket() -> None:
    assert infra_choice.docker_address({}) == "unix:///var/run/docker.sock"
    assert infra_choice.docker_address({"DOCKER_HOST": "tcp://10.0.0.5:2375"}) == "tcp://10.0.0.5:2375"


def _choice_command(**environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PARLEY_TEST_INFRA", "DOCKER_HOST")}
    return subprocess.run([sys.executable, str(REPO / "tests/infra_choice.py")], env={**env, **environment},
                          capture_output=True, text=True, check=False, timeout=30)


def test_make_test_asks_the_script_which_it_answers_on_stdout(tcp_engine: str, tmp_path: Path) -> None:
    assert _choice_command().stdout == "local\n"
    assert _choice_command(PARLEY_TEST_INFRA="auto", DOCKER_HOST=tcp_engine).stdout == "containers\n"
    absent = f"unix://{tmp_path}/absent.sock"
    assert _choice_command(PARLEY_TEST_INFRA="auto", DOCKER_HOST=absent).stdout == "local\n"
    refused = _choice_command(PARLEY_TEST_INFRA="containers", DOCKER_HOST=absent)
    assert refused.returncode == 2 and "no Docker engine answers at" in refused.stderr
    assert 'infra=$($PY tests/infra_choice.py) || exit 1' in (REPO / "deploy/local/test.sh").read_text()


def test_the_containers_are_the_images_compose_runs() -> None:
    compose = yaml.safe_load((REPO / "deploy/compose/compose.yaml").read_text())["services"]
    assert compose["kafka"]["image"] == infra_containers.KAFKA_IMAGE
    assert compose["mongodb"]["image"] == infra_containers.MONGO_IMAGE
    assert compose["redis"]["image"] == infra_containers.REDIS_IMAGE


def test_kafka_is_one_kraft_node_whose_listeners_agree_and_that_takes_the_largest_record() -> None:
    env = infra_containers.kafka_environment()
    listeners = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    protocols = {item.split(":")[0] for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")}
    assert listeners == protocols == {"HOST", "BROKER", "CONTROLLER"}
    assert f":{infra_containers.KAFKA_PORT}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert int(env["KAFKA_MESSAGE_MAX_BYTES"]) >= max(topic.max_message_bytes for topic in ALL_TOPICS)
    script = infra_containers.kafka_start_script("127.0.0.1", 32771)
    assert "KAFKA_ADVERTISED_LISTENERS=HOST://127.0.0.1:32771,BROKER://" in script
    assert script.rstrip().endswith("exec /etc/kafka/docker/run")


def test_mongodb_is_a_one_member_replica_set_reached_directly() -> None:
    assert infra_containers.mongo_command() == "--replSet rs0 --bind_ip_all"
    script = infra_containers.mongo_initiate_script()
    assert "rs.initiate({_id: 'rs0', members: [{_id: 0, host: 'localhost:27017'}]})" in script
    assert script.startswith("try { rs.status().ok }")  # a second run leaves an initiated set alone


def test_the_endpoints_are_what_the_fixtures_and_the_settings_read() -> None:
    found = infra_containers.endpoints("127.0.0.1:32771", "127.0.0.1", 32772, "127.0.0.1", 32773)
    assert found == {"PARLEY_KAFKA_BOOTSTRAP": "127.0.0.1:32771",
                     "PARLEY_MONGO_URI": "mongodb://127.0.0.1:32772/?directConnection=true",
                     "PARLEY_REDIS_URL": "redis://127.0.0.1:32773/0"}
    settings = InfraSettings(kafka_bootstrap=found["PARLEY_KAFKA_BOOTSTRAP"], mongo_uri=found["PARLEY_MONGO_URI"],
                             redis_url=found["PARLEY_REDIS_URL"], jwt_secret="k" * 32)  # type: ignore[arg-type]
    assert settings.mongo_uri == found["PARLEY_MONGO_URI"]
