"""Fixtures of the fault schedules: the whole system as real processes (tests/e2e/e2e_system.py) on the test
infrastructure, whose servers the schedules kill, pause and restart (deploy/local/infra.py's pid files)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "e2e"))
sys.path.insert(0, str(Path(__file__).parent))  # fault_stream

from e2e_customer import AGENT, TEAM
from e2e_fixtures import provider, pytest_runtest_makereport, smtp, system_fixture  # noqa: F401 - registered by being imported
from e2e_system import staff_the_tenant

# Services run with their default consumers per group (outbound's 4 senders):
# on the local broker they rejoin after a kill -9 because the restarted replica makes its predecessor's members
# leave and every replica evicts its own abandoned members (parley_common.rejoin, parley_common.dead_peers).
# Outbound looks for a lost cache only when a send meets it (not every 5 s): the projections' test sees its first
# read after the cache's restart answered `window_facts_rebuilding` whatever the machine's speed.
system = system_fixture("faults", prepare=lambda running: staff_the_tenant(running, AGENT, TEAM),
                        overrides={"PARLEY_OUTBOUND_PROJECTION_CHECK_SECONDS": "3600"})
