"""Task categories from instructions (keyword rules) and scene complexity from a picture.

Rules are checked in order; the first category with a matching keyword wins, so specific
categories (assembly, articulated-object) come before generic ones (pick-and-place).
"""

from __future__ import annotations

import re

import numpy as np

TASK_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("navigation", ("navigate", "go to", "walk to", "drive to", "move to the room", "go forward", "turn left",
                    "turn right", "follow the", "explore")),
    ("assembly", ("insert", "peg", "assemble", "assembly", "screw", "plug", "nut", "bolt", "mount", "attach",
                  "fit the", "hammer", "washer", "thread the", "slot the")),
    ("articulated-object", ("open", "close", "drawer", "door", "window", "cabinet", "lid", "faucet", "handle",
                            "lever", "hinge", "microwave", "fridge", "oven", "dial", "knob", "valve", "tap",
                            "latch", "lock", "crank")),
    ("pressing", ("press", "push the button", "button", "switch", "toggle")),
    ("pouring", ("pour",)),
    ("folding", ("fold", "unfold", "cloth", "towel", "shirt")),
    ("wiping", ("wipe", "clean", "scrub", "mop")),
    ("reaching", ("reach", "your hand to", "gripper to", "touch", "point to", "go near")),
    ("pushing", ("push", "slide", "shove", "nudge", "sweep", "kick", "brush", "knock")),
    ("pick-and-place", ("pick", "place", "put", "grasp", "lift", "stack", "move the", "transfer", "bring",
                        "hand over", "take", "sort", "bin", "basket", "drop", "carry", "store", "dunk",
                        "relocate")),
]
TASK_CATEGORIES = tuple(name for name, _ in TASK_RULES) + ("other",)
SCENE_LEVELS = ("low", "medium", "high")


def task_category(instruction: str | None) -> str:
    """Category of an instruction by keyword rules; 'other' when nothing matches."""
    text = " " + re.sub(r"[^a-z0-9 ]+", " ", (instruction or "").lower()) + " "
    text = re.sub(r"\s+", " ", text)
    for name, words in TASK_RULES:
        for w in words:
            if re.search(r"\b" + re.escape(w), text):
                return name
    return "other"


def scene_complexity(image: np.ndarray) -> tuple[str, float]:
    """Estimate clutter from one frame: share of pixels on an edge (low / medium / high).

    Edge = gray-level gradient above 24 on the image resized to about 96 px wide. Returns the
    level and the raw edge density.
    """
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    step = max(1, img.shape[1] // 96)
    g = img[::step, ::step].astype(np.float32)
    gx = np.abs(np.diff(g, axis=1))[:-1, :]
    gy = np.abs(np.diff(g, axis=0))[:, :-1]
    density = float(((gx + gy) > 24).mean()) if gx.size else 0.0
    level = "low" if density < 0.06 else ("medium" if density < 0.16 else "high")
    return level, density
