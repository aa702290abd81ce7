"""Every service's OpenAPI document tells the truth: schemathesis (all its checks: server errors, response schema,
status code and content type conformance, and the rest) against the five services and hooks running as real processes,
with tokens of several roles, bounded in time. By hand against `make run`: see README (the OpenAPI paragraph)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from e2e_fixtures import system_fixture
from e2e_system import HOOKS, JWT_SECRET, SERVICES, TENANT, System

from parley_common.auth import issue_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400), pytest.mark.usefixtures("staffed")]

ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_SECONDS = 8  # per service and role: the whole contract run stays within about two minutes
ROLES = {  # the roles whose view differs on each service
    "ingest": ("none",),
    "contacts": ("manager", "agent"),
    "router": ("manager", "agent", "integration"),  # integration: a bot, its own conversations only
    "outbound": ("manager", "agent", "integration"),
    "media": ("manager", "agent"),
    HOOKS: ("manager", "agent"),
}
# Streams that never end by design (server-sent events) are checked by their own tests, not by a fuzzer.
EXCLUDED_PATHS = r"^/v1/conversations/stream$"


system = system_fixture("contract", names=(*SERVICES, HOOKS))  # hooks too: the other e2e modules do not need it


def contract_command(system: System, service: str, role: str) -> list[str]:
    command = [str(ST), "--config-file", str(CONFIG), "run", f"{system.url(service)}/openapi.json", "--checks", "all",
               "--max-time", str(MAX_SECONDS), "--max-examples", "20", "--seed", "20261205", "--workers", "1",
               "--request-timeout", "10", "--exclude-path-regex", EXCLUDED_PATHS, "--no-color",
               "--output-truncate", "true", "--warnings", "off"]
    if role != "none":
        token = issue_token(JWT_SECRET, TENANT, f"contract-{role}", [role])
        command += ["--header", f"Authorization: Bearer {token}"]
    return command


@pytest.mark.parametrize(("service", "role"), [(s, r) for s, roles in ROLES.items() for r in roles])
def test_the_service_answers_what_its_openapi_document_says(system: System, service: str, role: str,
                                                          tmp_path: Path) -> None:
    # in a folder of its own: schemathesis keeps its example database and reports in the working directory
    run = subprocess.run(contract_command(system, service, role), capture_output=True, text=True, timeout=120,
                         check=False, cwd=tmp_path)
    assert run.returncode == 0, f"schemathesis on {service} as {role}:\n{run.stdout[-12_000:]}\n{run.stderr[-2_000:]}"
