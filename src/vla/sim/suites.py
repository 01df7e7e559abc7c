"""MetaWorld task suites (mt10, mt50, mt50:<difficulty>, ml45-train, ml45-test, mt1:<task>) and their
natural-language instructions.

Task lists come from metaworld itself (ML45's 45 train and 5 test tasks from its ML45 benchmark); the
difficulty groups of MT50 are the ones LeRobot's MetaWorld evaluation and the SmolVLA paper report (easy 28,
medium 11, hard 6, very hard 5 tasks); instructions come from the package data file
``instructions.json`` (for every MT50 task a "train" set, used to label demonstrations, and a
"heldout" set of reworded instructions used only in evaluation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

SPLITS = ("train", "heldout")

DIFFICULTIES = ("easy", "medium", "hard", "very_hard")
_DIFFICULTY_TASKS = {
    "easy": ("button-press-v3", "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-wall-v3",
             "coffee-button-v3", "dial-turn-v3", "door-close-v3", "door-lock-v3", "door-open-v3", "door-unlock-v3",
             "drawer-close-v3", "drawer-open-v3", "faucet-close-v3", "faucet-open-v3", "handle-press-v3",
             "handle-press-side-v3", "handle-pull-v3", "handle-pull-side-v3", "lever-pull-v3", "plate-slide-v3",
             "plate-slide-back-v3", "plate-slide-back-side-v3", "plate-slide-side-v3", "reach-v3", "reach-wall-v3",
             "window-close-v3", "window-open-v3", "peg-unplug-side-v3"),
    "medium": ("basketball-v3", "bin-picking-v3", "box-close-v3", "coffee-pull-v3", "coffee-push-v3", "hammer-v3",
               "peg-insert-side-v3", "push-wall-v3", "soccer-v3", "sweep-v3", "sweep-into-v3"),
    "hard": ("assembly-v3", "hand-insert-v3", "pick-out-of-hole-v3", "pick-place-v3", "push-v3", "push-back-v3"),
    "very_hard": ("shelf-place-v3", "disassemble-v3", "stick-pull-v3", "stick-push-v3", "pick-place-wall-v3"),
}


def difficulty(task: str) -> str:
    """The MT50 difficulty group of ``task``: "easy", "medium", "hard" or "very_hard"."""
    for group, tasks in _DIFFICULTY_TASKS.items():
        if task in tasks:
            return group
    raise KeyError(f"task {task!r} has no MT50 difficulty group (not an MT50 task)")


def ml45_tasks(split: str) -> list[str]:
    """MetaWorld ML45's "train" (45) or "test" (5, never seen in training) tasks, in metaworld's order."""
    from metaworld.env_dict import ML45_V3

    if split not in ML45_V3:
        raise ValueError(f"ML45 split must be 'train' or 'test', got {split!r}")
    return list(ML45_V3[split])


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
    return ["mt10", "mt50", *(f"mt50:{d}" for d in DIFFICULTIES), "ml45-train", "ml45-test",
            *(f"mt1:{t}" for t in mt50_tasks())]


def make_suite(name: str) -> Suite:
    """Build a suite by name: ``"mt10"``, ``"mt50"`` or ``"mt1:<task>"`` (e.g. ``"mt1:reach-v3"``)."""
    key = name.strip().lower()
    if key == "mt10":
        return Suite("mt10", tuple(mt10_tasks()))
    if key == "mt50":
        return Suite("mt50", tuple(mt50_tasks()))
    if key.startswith("mt50:"):
        group = key[5:]
        if group not in DIFFICULTIES:
            raise ValueError(f"unknown MT50 difficulty {group!r} in suite {name!r}; valid: {', '.join(DIFFICULTIES)}")
        return Suite(key, tuple(t for t in mt50_tasks() if difficulty(t) == group))
    if key in ("ml45-train", "ml45-test"):
        return Suite(key, tuple(ml45_tasks(key.removeprefix("ml45-"))))
    if key.startswith("mt1:"):
        task = key[4:]
        if task in mt50_tasks():
            return Suite(key, (task,))
        raise ValueError(
            f"unknown MetaWorld task {task!r} in suite {name!r}; valid tasks: {', '.join(mt50_tasks())}"
        )
    raise ValueError(
        f"unknown suite {name!r}; valid suites: mt10, mt50, mt50:<{'|'.join(DIFFICULTIES)}>, ml45-train, "
        "ml45-test, mt1:<task> with <task> one of: "
        + ", ".join(mt50_tasks())
    )
