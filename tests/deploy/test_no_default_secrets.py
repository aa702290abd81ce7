"""No key ships with the code or the deployment files: a built-in default lets anyone who reads the source mint
tokens or download links (issue 13). Services refuse to start without them (tests/common/unit)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"change-?me", re.IGNORECASE)
KEY_VARIABLES = ("PARLEY_JWT_SECRET", "PARLEY_MEDIA_SIGNING_SECRET", "PARLEY_MEDIA_ID_SECRET",
                 "PARLEY_MEDIA_S3_ACCESS_KEY", "PARLEY_MEDIA_S3_SECRET_KEY")


def test_no_placeholder_secret_in_services_libraries_or_deployment_files() -> None:
    found = []
    for top in ("services", "libs", "deploy"):
        for path in (REPO / top).rglob("*"):
            if "node_modules" in path.parts:  # the console's npm packages: installed, not ours
                continue
            if path.is_file() and path.suffix in {".py", ".yaml", ".yml", ".json", ".env", ".sh", ""}:
                found += [f"{path.relative_to(REPO)}: {line.strip()}"
                          for line in path.read_text(errors="replace").splitlines() if PLACEHOLDER.search(line)]
    assert found == []


def test_the_keys_are_never_given_a_value_in_the_manifests_or_the_compose_file() -> None:
    compose = (REPO / "deploy" / "compose" / "compose.yaml").read_text()
    for variable in KEY_VARIABLES:
        assert re.search(rf"{variable}: \$\{{{variable}:\?", compose), f"compose must take {variable} from the shell"
    for path in (REPO / "deploy" / "k8s").rglob("*.yaml"):
        text = path.read_text()
        assert not any(f"{variable}=" in text or f"{variable}:" in text for variable in KEY_VARIABLES), path
