"""No Docker engine here, so the container build is checked by reading it: every Dockerfile under deploy/ is
parsed with BuildKit's own parser (PyPI `dockerfile`), held to the rules of issue 8 and linted with hadolint;
the entrypoint script is run against a stand-in service binary."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "deploy").rglob("Dockerfile*"))
SERVICES = ("ingest", "contacts", "router", "outbound", "media", "hooks", "console")
ALLOWED_SOURCES = {"constraints.txt", "libs/common/", "services/${SERVICE}/", "deploy/docker/entrypoint.sh"}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|cmake|apt-get|apk|pip install)\b")

Command = Any  # dockerfile.Command: cmd, flags, value, json, original


def parse(path: Path, tools: None) -> tuple[dict[str, str], list[list[Command]]]:
    """Global ARG defaults, and the instructions of each stage (a stage starts at FROM, which it includes)."""
    import dockerfile

    global_args: dict[str, str] = {}
    stages: list[list[Command]] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            stages.append([command])
        elif stages:
            stages[-1].append(command)
        elif command.cmd == "ARG" and "=" in command.value[0]:
            name, _, default = command.value[0].partition("=")
            global_args[name] = default
    return global_args, stages


def values(stage: Sequence[Command], instruction: str) -> list[Command]:
    return [command for command in stage if command.cmd == instruction]


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)


def test_there_is_a_dockerfile() -> None:
    assert DOCKERFILES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_base_images_are_slim_and_pinned(path: Path, tools_installed: None) -> None:
    args, stages = parse(path, tools_installed)
    assert len(stages) >= 2, "multi-stage: build, then a final stage without build leftovers"
    for stage in stages:
        image = expand(stage[0].value[0], args)
        reference, _, digest = image.partition("@")
        name, _, tag = reference.partition(":")
        assert tag and tag != "latest", f"{image}: pin the tag"
        assert re.match(r"^\d+\.\d+\.\d+-slim", tag), f"{image}: a slim image with a full Python version"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{image}: pin the digest too"
        assert name in {"python", "docker.io/library/python"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_image_carries_the_oci_labels_and_its_sbom(path: Path, tools_installed: None) -> None:
    _, stages = parse(path, tools_installed)
    labels = {pair for command in values(stages[-1], "LABEL") for pair in zip(command.value[::2], command.value[1::2],
                                                                                strict=True)}
    names = {name for name, _ in labels}
    assert {f"org.opencontainers.image.{key}" for key in ("title", "description", "version", "revision", "created",
                                                           "source", "base.name", "base.digest")} <= names
    assert ("dev.parley.sbom", '"/opt/parley/sbom.cdx.json"') in labels
    sbom = [command.value[0] for command in values(stages[0], "RUN") if "cyclonedx-py environment" in command.value[0]]
    assert sbom and "--output-file /opt/parley/sbom.cdx.json /opt/parley/bin/python" in sbom[0]
    assert "--pyproject services/${SERVICE}/pyproject.toml" in sbom[0] and "-c constraints.txt" in sbom[0]


def _declared(pyproject: Path) -> list[str]:
    requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0].lower() for requirement in requirements]


def test_the_sbom_command_lists_the_service_and_its_dependencies(tmp_path: Path) -> None:
    """The build stage's command on an environment holding what the image of ingest holds at its top: the common
    library, the service and their declared dependencies (their installed metadata copied from this checkout's
    environment, which is enough for cyclonedx-py and keeps the test quick)."""
    import importlib.metadata
    import json
    import shutil
    import venv

    venv.EnvBuilder(with_pip=False).create(tmp_path / "env")
    site = next((tmp_path / "env/lib").glob("python3*/site-packages"))
    declared = {"parley-common", "parley-ingest", *_declared(REPO / "libs/common/pyproject.toml"),
                *_declared(REPO / "services/ingest/pyproject.toml")}
    for name in declared:
        metadata = Path(str(importlib.metadata.distribution(name)._path))  # type: ignore[attr-defined]
        shutil.copytree(metadata, site / metadata.name)
    out = tmp_path / "sbom.cdx.json"
    cyclonedx = Path(sys.executable).parent / "cyclonedx-py"
    subprocess.run([str(cyclonedx), "environment", "--pyproject", str(REPO / "services/ingest/pyproject.toml"),
                    "--output-reproducible", "--output-format", "JSON", "--output-file", str(out),
                    str(tmp_path / "env/bin/python")], check=True, capture_output=True, timeout=120)
    document = json.loads(out.read_text())
    assert document["bomFormat"] == "CycloneDX"
    assert document["metadata"]["component"]["name"] == "parley-ingest"
    listed = {component["name"].lower().replace("_", "-"): component for component in document["components"]}
    assert declared - {"parley-ingest"} <= set(listed), declared - set(listed)
    aiokafka = listed["aiokafka"]
    assert aiokafka["version"] == importlib.metadata.version("aiokafka")
    assert aiokafka["purl"] == f"pkg:pypi/aiokafka@{aiokafka['version']}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_final_stage_runs_as_a_non_root_user_without_build_tools(path: Path, tools_installed: None) -> None:
    args, stages = parse(path, tools_installed)
    final = stages[-1]
    stage_args = {name: default for command in values(final, "ARG") for name, _, default in
                  [command.value[0].partition("=")]}
    users = values(final, "USER")
    assert users, "the final stage sets USER"
    user = expand(users[-1].value[0], {**args, **stage_args}).split(":")[0]
    assert user not in {"root", "0", ""}
    for command in values(final, "RUN"):
        assert not BUILD_TOOLS.search(command.value[0]), f"build tool in the final stage: {command.original}"
    assert not any(values(stage, "HEALTHCHECK") for stage in stages), "Kubernetes probes check health"
    starts = values(final, "ENTRYPOINT") or values(final, "CMD")
    assert starts and starts[-1].json, "exec form, so the service is PID 1 and receives SIGTERM"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_copies_only_its_service_and_the_common_library(path: Path, tools_installed: None) -> None:
    _, stages = parse(path, tools_installed)
    copies = [command for stage in stages for command in values(stage, "COPY") + values(stage, "ADD")]
    assert values(stages[-1], "COPY"), "the final stage copies the built environment"
    for command in copies:
        if any(flag.startswith("--from=") for flag in command.flags):
            continue
        assert command.cmd == "COPY", "ADD fetches URLs and unpacks archives: COPY only"
        sources = set(command.value[:-1])
        assert sources <= ALLOWED_SOURCES, command.original


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_finds_nothing(path: Path, tools_installed: None) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--no-color", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_admits_only_what_an_image_needs() -> None:
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "deny everything first"
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert admitted == {"constraints.txt", "libs/common", "services", "deploy/docker/entrypoint.sh"}
    for junk in ("**/__pycache__", "**/*.egg-info"):
        assert junk in rules


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_installs_the_console_script_the_entrypoint_starts(service: str) -> None:
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())["project"]
    assert f"parley-{service}" in project["scripts"]
    assert "parley-common" in project["dependencies"]


def test_entrypoint_starts_the_service_listening_on_all_interfaces(tmp_path: Path) -> None:
    fake_bin = tmp_path / "opt" / "parley" / "bin"
    fake_bin.mkdir(parents=True)
    (fake_bin / "parley-router").write_text('#!/bin/sh\necho "host=$PARLEY_ROUTER_HOST args=$*"\n')
    (fake_bin / "parley-router").chmod(0o755)
    script = (REPO / "deploy" / "docker" / "entrypoint.sh").read_text()
    script = script.replace("/opt/parley", str(tmp_path / "opt" / "parley"))
    (tmp_path / "entrypoint.sh").write_text(script)

    def run(**env: str) -> str:
        result = subprocess.run(["sh", str(tmp_path / "entrypoint.sh"), "--flag"], capture_output=True, text=True,
                                env={"PATH": os.environ["PATH"], **env}, check=True)
        return result.stdout.strip()

    assert run(PARLEY_SERVICE="router") == "host=0.0.0.0 args=--flag"
    assert run(PARLEY_SERVICE="router", PARLEY_ROUTER_HOST="10.1.2.3") == "host=10.1.2.3 args=--flag"
