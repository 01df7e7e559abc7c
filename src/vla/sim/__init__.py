"""Simulated robot suites: MetaWorld tasks, instructions, an image-observation env and demo collection.

Importing this package sets ``MUJOCO_GL=egl`` (headless rendering) unless already set.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from vla.sim.env import DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE, MetaWorldEnv  # noqa: E402
from vla.sim.suites import Suite, make_suite, suite_names  # noqa: E402

__all__ = ["DEFAULT_CAMERAS", "DEFAULT_IMAGE_SIZE", "MetaWorldEnv", "Suite", "make_suite", "suite_names"]
