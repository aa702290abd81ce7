"""What a query plan (`explain`'s winning plan) is made of: its stages from the top down, for the tests that hold
a query to an index (no collection scan)."""

from __future__ import annotations

from typing import Any


def plan_stages(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    """Each stage of `plan` with the index it reads (None for a stage that reads none), top first."""
    found = [(plan["stage"], plan.get("indexName"))]
    for key in ("inputStage", "queryPlan"):
        if key in plan:
            found += plan_stages(plan[key])
    for child in plan.get("inputStages", []):
        found += plan_stages(child)
    return found
