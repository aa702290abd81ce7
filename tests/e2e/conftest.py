"""Fixtures of the journeys: the whole system as real processes (see e2e_system.py), one per test module;
every journey uses its own customer so the journeys never see each other.

The services use the shared test Kafka/MongoDB/Redis (`infra_endpoints`). While other runs use the same Kafka
at the same time, a service whose consumer group ids lacked the namespace could hang joining them (today
parley_common.kafka prefixes every group with it); the readiness error names such groups (HINT). To run the
journeys meanwhile, point PARLEY_KAFKA_BOOTSTRAP (with PARLEY_MONGO_URI and PARLEY_REDIS_URL) at a private broker,
e.g. `noida-db start --only kafka --kafka-port P`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from e2e_customer import AGENT, TEAM
from e2e_fixtures import http, provider, pytest_runtest_makereport, smtp, system_fixture  # noqa: F401 - registered by being imported
from e2e_system import System, staff_the_tenant

system = system_fixture("e2e")  # a module that needs other settings or processes declares its own


@pytest.fixture(scope="module")
def staffed(system: System) -> System:
    """The journeys' agent in a team that every conversation is routed to: an agent sees and answers the
    conversations of their teams (parley_common.visibility). Modules that seed the tenant themselves skip it."""
    staff_the_tenant(system, AGENT, TEAM)
    return system
