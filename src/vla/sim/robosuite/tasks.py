"""robosuite tasks of the suite, their instructions (train / held-out) and suite names for ``vla eval``.

A suite name is ``robosuite:<task>`` (one task, case-insensitive: ``robosuite:lift``) or
``robosuite`` (every task). Task indices for episode seeds start at 100 so they never meet the
MetaWorld MT50 indices (0..49) in ``vla.sim.seeds``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from vla.errors import VlaError

TASKS: tuple[str, ...] = ("Lift", "Stack", "PickPlaceCan")
SPLITS = ("train", "heldout")
TASK_INDEX_BASE = 100
SUITE_PREFIX = "robosuite"


def task_name(name: str) -> str:
    """The canonical task name for ``name`` (case-insensitive); a VlaError naming the known tasks otherwise."""
    for t in TASKS:
        if t.lower() == str(name).strip().lower():
            return t
    raise VlaError(f"unknown robosuite task {name!r}; known tasks: {', '.join(TASKS)}")


def task_index(task: str) -> int:
    """Stable index of ``task`` for ``vla.sim.seeds`` (100, 101, ...)."""
    return TASK_INDEX_BASE + TASKS.index(task_name(task))


@cache
def load_instructions() -> dict[str, dict[str, list[str]]]:
    """``{task: {"train": [...], "heldout": [...]}}`` from the package's instructions.json."""
    text = resources.files("vla.sim.robosuite").joinpath("instructions.json").read_text(encoding="utf-8")
    return json.loads(text)["tasks"]


def instructions(task: str, split: str = "train") -> list[str]:
    """Instructions of ``task`` in ``split`` ("train" labels demonstrations, "heldout" is evaluation only)."""
    if split not in SPLITS:
        raise VlaError(f"unknown instruction split {split!r}; valid: {', '.join(SPLITS)}")
    return list(load_instructions()[task_name(task)][split])


def is_robosuite_suite(name: str) -> bool:
    """True for ``robosuite`` and ``robosuite:<anything>``."""
    key = str(name).strip().lower()
    return key == SUITE_PREFIX or key.startswith(SUITE_PREFIX + ":")


@dataclass(frozen=True)
class RobosuiteSuite:
    """A named list of robosuite tasks, the same shape as ``vla.sim.suites.Suite``."""

    name: str
    tasks: tuple[str, ...]

    def instructions(self, task: str, split: str = "train") -> list[str]:
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not in suite {self.name!r}; tasks: {', '.join(self.tasks)}")
        return instructions(task, split)

    def task_index(self, task: str) -> int:
        return task_index(task)

    def __len__(self) -> int:
        return len(self.tasks)


def make_robosuite_suite(name: str) -> RobosuiteSuite:
    """``"robosuite"`` (all tasks) or ``"robosuite:<task>"`` (e.g. ``"robosuite:lift"``)."""
    key = str(name).strip()
    if key.lower() == SUITE_PREFIX:
        return RobosuiteSuite(SUITE_PREFIX, TASKS)
    if not is_robosuite_suite(key):
        raise VlaError(f"not a robosuite suite: {name!r}; use robosuite or robosuite:<task> ({', '.join(TASKS)})")
    task = task_name(key.split(":", 1)[1])
    return RobosuiteSuite(f"{SUITE_PREFIX}:{task.lower()}", (task,))
