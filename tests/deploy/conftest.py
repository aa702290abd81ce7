"""Fixtures of the deploy tests: the deploy/k8s scripts as modules, and each overlay rendered once per run."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def k8s_module(name: str) -> ModuleType:
    """deploy/k8s is a folder of scripts, not a package: import one of them by name."""
    if str(K8S) not in sys.path:
        sys.path.insert(0, str(K8S))
    return importlib.import_module(name)


@pytest.fixture(scope="session")
def generate() -> ModuleType:
    return k8s_module("generate")


@pytest.fixture(scope="session")
def services() -> ModuleType:
    return k8s_module("services")


@pytest.fixture(scope="session")
def tools_installed() -> None:
    """The pinned tools of deploy/requirements.txt, installed the way `make manifests` does when missing."""
    subprocess.run([str(K8S / "validate.sh"), "--tools-only"], check=True, capture_output=True)


@pytest.fixture(scope="session")
def validate(tools_installed: None) -> ModuleType:
    return k8s_module("validate")


@pytest.fixture(scope="session")
def rendered(validate: ModuleType) -> dict[str, list[dict[str, Any]]]:
    return {overlay: validate.render(overlay) for overlay in validate.OVERLAYS}


@pytest.fixture(scope="session")
def dev(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["dev"]


@pytest.fixture(scope="session")
def production(rendered: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return rendered["production"]
