"""MetaWorld task suites (mt10, mt50, mt1:<task>) and their natural-language instructions.

Task lists come from metaworld itself; instructions come from the package data file
``instructions.json`` (for every MT50 task a "train" set, used to label demonstrations, and a
"heldout" set of reworded instructions used only in evaluation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

SPLITS = ("train", "heldout")


def mt50_tasks() -> list[str]:
    """All 50 MetaWorld v3 task names, in metaworld's canonical order."""
    from metaworld.env_dict import MT50_V3

    return list(MT50_V3)


def mt10_tasks() -> list[str]:
    """The 10 MT10 task names, in metaworld's order."""
    from metaworld.env_dict import MT10_V3

    return list(MT10_V3)


@cache
def load_instructions() -> dict[str, dict[str, list[str]]]:
    """Read ``instructions.json``: ``{task: {"train": [...], "heldout": [...]}}``."""
    text = resources.files("vla.sim").joinpath("instructions.json").read_text(encoding="utf-8")
    return json.loads(text)["tasks"]


@dataclass(frozen=True)
class Suite:
    """A named list of MetaWorld tasks with their instructions."""

    name: str
    tasks: tuple[str, ...]

    def instructions(self, task: str, split: str = "train") -> list[str]:
        """Instructions for ``task``: ``split`` is "train" (demonstrations) or "heldout" (evaluation only)."""
        if task not in self.tasks:
            raise KeyError(f"task {task!r} is not in suite {self.name!r}; tasks: {', '.join(self.tasks)}")
        if split not in SPLITS:
            raise ValueError(f"unknown instruction split {split!r}; valid: {', '.join(SPLITS)}")
        return list(load_instructions()[task][split])

    def task_index(self, task: str) -> int:
        """Stable index of ``task`` among all MT50 tasks (independent of the suite)."""
        return mt50_tasks().index(task)

    def __len__(self) -> int:
        return len(self.tasks)


def suite_names() -> list[str]:
    """Every valid suite name."""
    return ["mt10", "mt50", *(f"mt1:{t}" for t in mt50_tasks())]


def make_suite(name: str) -> Suite:
    """Build a suite by name: ``"mt10"``, ``"mt50"`` or ``"mt1:<task>"`` (e.g. ``"mt1:reach-v3"``)."""
    key = name.strip().lower()
    if key == "mt10":
        return Suite("mt10", tuple(mt10_tasks()))
    if key == "mt50":
        return Suite("mt50", tuple(mt50_tasks()))
    if key.startswith("mt1:"):
        task = key[4:]
        if task in mt50_tasks():
            return Suite(key, (task,))
        raise ValueError(
            f"unknown MetaWorld task {task!r} in suite {name!r}; valid tasks: {', '.join(mt50_tasks())}"
        )
    raise ValueError(
        f"unknown suite {name!r}; valid suites: mt10, mt50, mt1:<task> with <task> one of: "
        + ", ".join(mt50_tasks())
    )
