import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley_common.channels import load_channels_or_exit
from parley_common.settings import InfraSettings

REPO = Path(__file__).resolve().parents[3]


def run_service(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "parley-ingest"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return subprocess.run([str(binary)], env={**clean, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


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
    assert InfraSettings(namespace="").database_name("router") == "parley_router"
    assert InfraSettings(namespace="t1").database_name("router") == "parley_router_t1"
    assert InfraSettings(namespace="t1").redis_prefix() == "t1:"
