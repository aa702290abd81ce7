import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from parley_common import runtime
from parley_common.channels import load_channels_or_exit
from parley_common.settings import InfraSettings
from parley_ingest.settings import IngestSettings

REPO = Path(__file__).resolve().parents[3]
SECRET = "s" * 32
KEYS = {"PARLEY_JWT_SECRET": SECRET, "PARLEY_MEDIA_SIGNING_SECRET": SECRET, "PARLEY_MEDIA_ID_SECRET": SECRET}
SERVICES = ("ingest", "contacts", "router", "outbound", "media")


def run_service(env: dict[str, str], service: str = "ingest", keys: dict[str, str] = KEYS
                ) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / f"parley-{service}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run([str(binary)], env={**clean, **keys, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_starts_without_the_token_key(service: str) -> None:
    result = run_service({}, service, keys={})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"parley-{service}: refusing to start: invalid setting PARLEY_JWT_SECRET: Field required"]


@pytest.mark.parametrize("variable", ["PARLEY_MEDIA_SIGNING_SECRET", "PARLEY_MEDIA_ID_SECRET"])
def test_media_does_not_start_without_its_link_and_id_keys(variable: str) -> None:
    missing = run_service({}, "media", keys={key: value for key, value in KEYS.items() if key != variable})
    short = run_service({variable: "change-me-media-links"}, "media")
    assert (missing.returncode, short.returncode) == (2, 2)
    assert missing.stderr.strip().splitlines() == [
        f"parley-media: refusing to start: invalid setting {variable}: Field required"]
    assert short.stderr.strip().splitlines() == [
        f"parley-media: refusing to start: invalid setting {variable}: Value error, a key needs at least 32 "
        "characters (e.g. `openssl rand -hex 32`)"]


def test_a_bad_setting_stops_the_service_with_one_line_naming_it() -> None:
    result = run_service({"PARLEY_INGEST_PORT": "not-a-port"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "parley-ingest: refusing to start: invalid setting PARLEY_INGEST_PORT: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_bad_shared_setting_is_named_too() -> None:
    result = run_service({"PARLEY_NAMESPACE": "has space"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "parley-ingest: refusing to start: invalid setting PARLEY_NAMESPACE: "
        "String should match pattern '^[a-zA-Z0-9_-]*$'"
    ]


@pytest.mark.usefixtures("restores_logging")
def test_a_trace_exporter_this_build_lacks_stops_the_service_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"PARLEY_JWT_SECRET": SECRET, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        runtime.run_service("parley-ingest", IngestSettings, lambda _: pytest.fail("the app was built"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "parley-ingest: refusing to start: only OTLP over http/protobuf is supported (OTEL_TRACES_EXPORTER=otlp, "
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc)")


def test_a_bad_channel_file_stops_the_service_with_one_line(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text("channels:\n  - {id: tg, type: telegram, tenant_id: acme, bot_token: '1:x'}\n")
    with pytest.raises(SystemExit) as stopped:
        load_channels_or_exit(path, "parley-ingest")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"parley-ingest: refusing to start: {path}: channels[tg].webhook_secret: Field required"
    )


def test_namespace_isolates_database_and_redis_keys() -> None:
    def infra(namespace: str) -> InfraSettings:
        return InfraSettings(namespace=namespace, jwt_secret=SecretStr(SECRET))

    assert infra("").database_name("router") == "parley_router"
    assert infra("t1").database_name("router") == "parley_router_t1"
    assert infra("t1").redis_prefix() == "t1:"
