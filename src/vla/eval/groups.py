"""Success by MT50 difficulty group (easy, medium, hard, very hard), as LeRobot and the SmolVLA paper report it.

A group's success rate is the mean of its tasks' success rates (each task weighs the same, as in the
suite's overall mean); only the groups that the evaluated suite has tasks in appear
(none for a suite of another simulator).

The SmolVLA paper's "Avg" column is the plain mean of its four group columns, not the mean over the 50
tasks (the groups have 28, 11, 6 and 5 tasks, so the two differ): ``group_mean`` gives that figure so a
report can stand beside the paper's table on the paper's own terms.
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


def group_mean(groups: dict[str, dict[str, Any]]) -> float | None:
    """The unweighted mean of the groups' success rates (the SmolVLA table's "Avg"); None without all four."""
    if set(groups) != set(DIFFICULTIES):
        return None
    return sum(groups[g]["success_rate"] for g in DIFFICULTIES) / len(DIFFICULTIES)
