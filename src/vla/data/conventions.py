"""LeRobot's feature names, and which names of a dataset look like renamed versions of them.

LeRobot (and this project's training and conversion) expect ``action``, ``observation.state`` and
cameras under ``observation.images.<name>``. Datasets published by others sometimes use ``actions``,
``state`` or ``image``. `nonstandard_features` lists each such key with the name it was expected to
have, so an error or `vla info` can say both, and `mapping_hint` writes the --mapping lines that fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vla.data.features import is_visual
from vla.data.layout import DEFAULT_FEATURES

ACTION = "action"
STATE = "observation.state"
CAMERA_PREFIX = "observation.images."
ACTION_ALIASES = ("actions", "act", "robot_action", "action_", "actions.joints", "observation.action")
STATE_ALIASES = ("state", "states", "observation.states", "obs.state", "observation_state", "robot_state",
                 "observation.robot_state", "proprio", "observation.proprio", "qpos", "observation.qpos",
                 "joint_state", "observation.joint_state")
_CAMERA_STRIP = ("observation.images.", "observation.image.", "observation.", "images.", "image.", "obs.")


@dataclass(frozen=True)
class Finding:
    """``found`` (a key of the dataset, or None) where LeRobot's convention expects ``expected``."""

    expected: str
    found: str | None
    what: str

    def describe(self) -> str:
        if self.found is None:
            return f"expected {self.expected!r} ({self.what}), found none"
        return f"expected {self.expected!r} ({self.what}), found {self.found!r}"

    def to_json(self) -> dict[str, Any]:
        return {"expected": self.expected, "found": self.found, "what": self.what}


def camera_name(key: str) -> str:
    """The conventional key of a camera feature: ``image`` -> ``observation.images.image``."""
    if key.startswith(CAMERA_PREFIX):
        return key
    name = key
    for p in _CAMERA_STRIP:
        if name.startswith(p) and len(name) > len(p):
            name = name[len(p):]
            break
    return CAMERA_PREFIX + name


def nonstandard_features(features: dict[str, dict[str, Any]], require_action: bool = False) -> list[Finding]:
    """Keys of ``features`` that break LeRobot's naming, each with the name expected instead.

    A missing ``action``/``observation.state`` is reported when a look-alike key exists (``actions``,
    ``state``, ...); a missing ``action`` with no look-alike only when ``require_action``."""
    user = {k: v for k, v in features.items() if k not in DEFAULT_FEATURES}
    out: list[Finding] = []
    if ACTION not in user:
        alias = next((a for a in ACTION_ALIASES if a in user and not is_visual(user[a])), None)
        if alias is not None or require_action:
            out.append(Finding(ACTION, alias, "the action feature"))
    if STATE not in user:
        alias = next((a for a in STATE_ALIASES if a in user and not is_visual(user[a])), None)
        if alias is not None:
            out.append(Finding(STATE, alias, "the state feature"))
    for k, v in user.items():
        if is_visual(v) and not k.startswith(CAMERA_PREFIX):
            out.append(Finding(camera_name(k), k, f"a camera ({v.get('dtype')})"))
    return out


def mapping_hint(findings: list[Finding]) -> str:
    """The ``features:`` block of a --mapping file that renames the found keys."""
    pairs = [f"{f.expected}: {f.found}" for f in findings if f.found is not None]
    return "features: {" + ", ".join(pairs) + "}" if pairs else ""
