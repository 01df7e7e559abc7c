"""Success by MT50 difficulty group (easy, medium, hard, very hard), as LeRobot and the SmolVLA paper report it.

A group's success rate is the mean of its tasks' success rates (each task weighs the same, as in the
suite's overall mean); only the groups that the evaluated suite has tasks in appear
(none for a suite of another simulator).
"""

from __future__ import annotations

from typing import Any

from vla.sim.suites import DIFFICULTIES, difficulty, mt50_tasks


def difficulty_breakdown(tasks: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``tasks``: report.json's per-task entries -> {group: {"tasks", "episodes", "successes", "success_rate"}}."""
    out: dict[str, dict[str, Any]] = {}
    known = set(mt50_tasks())  # tasks of other simulators (robosuite) have no MT50 group
    for group in DIFFICULTIES:
        members = [t for t in tasks if t in known and difficulty(t) == group]
        if not members:
            continue
        out[group] = {
            "tasks": len(members),
            "episodes": sum(tasks[t]["episodes"] for t in members),
            "successes": sum(tasks[t]["successes"] for t in members),
            "success_rate": sum(tasks[t]["success_rate"] for t in members) / len(members),
        }
    return out
