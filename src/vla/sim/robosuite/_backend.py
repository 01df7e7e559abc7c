"""Import robosuite quietly and headless, and report its version.

robosuite reads ``robosuite.macros_private`` at import time; we provide that module in memory
(console logging at ERROR, no forced GPU rendering: ``vla.sim`` has set ``MUJOCO_GL=egl``), so
importing it prints no warnings about a missing macro file, robosuite_models or mink.

robosuite 1.5.2's JOINT_VELOCITY controller cannot be built: its ``__init__`` assigns to the
read-only ``torque_compensation`` property, and ``run_controller`` tests that array's truth value.
``_patch_joint_velocity`` gives the property a setter (the flag, default on) and makes the value
it returns truthy, so the controller runs as written: PID on joint velocity + gravity compensation.
"""

from __future__ import annotations

import os
import sys
import types
from functools import cache
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


@cache
def robosuite() -> Any:
    """The imported ``robosuite`` package (a clear error when it is not installed)."""
    if "robosuite.macros_private" not in sys.modules:
        private = types.ModuleType("robosuite.macros_private")
        private.CONSOLE_LOGGING_LEVEL = "ERROR"
        private.FILE_LOGGING_LEVEL = None
        private.MUJOCO_GPU_RENDERING = False
        sys.modules["robosuite.macros_private"] = private
    try:
        import robosuite as rs
    except ImportError as e:
        from vla.errors import VlaError

        raise VlaError(
            f"robosuite is not installed ({e}); install the extra: pip install 'vla[robosuite]' "
            "(robosuite 1.5.2 without its numpy<2 pins, see docs/robosuite.md)"
        ) from e
    _patch_joint_velocity()
    return rs


class _Compensation(np.ndarray):
    """Gravity-compensation torques that are always truthy (robosuite tests ``if self.torque_compensation``)."""

    def __bool__(self) -> bool:
        return True


def _patch_joint_velocity() -> None:
    from robosuite.controllers.parts.generic.joint_vel import JointVelocityController

    if getattr(JointVelocityController, "_vla_patched", False):
        return

    def get(self):
        bias = np.asarray(self.sim.data.qfrc_bias[self.qvel_index], dtype=np.float64)
        if not getattr(self, "_use_compensation", True):
            bias = np.zeros_like(bias)
        return bias.view(_Compensation)

    def set_(self, value):
        self._use_compensation = bool(value)

    JointVelocityController.torque_compensation = property(get, set_)
    JointVelocityController._vla_patched = True


def robosuite_version() -> str:
    """Installed robosuite version, e.g. '1.5.2'."""
    return str(robosuite().__version__)
