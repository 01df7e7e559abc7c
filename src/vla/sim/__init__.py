"""Simulated robot suites: MetaWorld tasks, instructions, an image-observation env and demo collection.

Importing this package sets ``MUJOCO_GL=egl`` (headless rendering) unless already set; mujoco and
metaworld are imported only when ``MetaWorldEnv`` (or collection) is first used.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

from vla.sim.defaults import CONTROL_RATE_HZ, DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE  # noqa: E402
from vla.sim.suites import Suite, make_suite, suite_names  # noqa: E402

__all__ = [
    "CONTROL_RATE_HZ",
    "DEFAULT_CAMERAS",
    "DEFAULT_IMAGE_SIZE",
    "MetaWorldEnv",
    "Suite",
    "collect_metaworld",
    "make_suite",
    "suite_names",
]


def __getattr__(name: str) -> Any:
    if name == "MetaWorldEnv":
        from vla.sim.env import MetaWorldEnv

        return MetaWorldEnv
    if name == "collect_metaworld":
        from vla.sim.collect import collect_metaworld

        return collect_metaworld
    raise AttributeError(f"module 'vla.sim' has no attribute {name!r}")
