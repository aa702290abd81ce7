"""Makes contacts_helpers importable from the contacts integration tests, and signs their tokens with the
test's JWT secret."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import contacts_helpers

from parley_common.settings import InfraSettings


@pytest.fixture(autouse=True)
def jwt_secret(infra_settings: InfraSettings) -> None:
    contacts_helpers.SECRET["value"] = infra_settings.jwt_secret.get_secret_value()
