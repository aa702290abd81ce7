"""The router's pure dispatch plan (`domain.assignment.drain`): N waiting conversations over A online agents of
one team, round robin and least busy. No I/O: prints milliseconds per plan.

    .venv/bin/python bench/router_plan.py [WAITING] [AGENTS]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from parley_router.domain.assignment import Agent, Presence, Strategy, Team, Waiting, drain
from parley_router.domain.conversation import Assignee, AssigneeKind

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def main() -> None:
    waiting_count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    agent_count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    team = Assignee(AssigneeKind.TEAM, "default")
    agents = [Agent(f"agent{i:04d}", teams=frozenset({"default"}), presence=Presence.ONLINE,
                    active=(("whatsapp", i % 5),)) for i in range(agent_count)]
    queue = [Waiting(f"c{i}", "whatsapp", team, 0, T0 + timedelta(seconds=i)) for i in range(waiting_count)]
    for strategy in (Strategy.ROUND_ROBIN, Strategy.LEAST_BUSY):
        rounds = 20
        started = time.perf_counter()
        for _ in range(rounds):
            plan = drain(queue, agents, {"default": Team("default", strategy)}, {})
        elapsed = (time.perf_counter() - started) / rounds
        print(f"{strategy.value}: {waiting_count} waiting over {agent_count} agents: {elapsed * 1000:.1f} ms per plan, "
              f"{len(plan.assignments)} assigned")


if __name__ == "__main__":
    main()
