"""Import robosuite quietly and headless, and report its version.

robosuite reads ``robosuite.macros_private`` at import time; we provide that module in memory
(console logging at ERROR, no forced GPU rendering: ``vla.sim`` has set ``MUJOCO_GL=egl``), so
importing it prints no warnings about a missing macro file, robosuite_models or mink.
"""

from __future__ import annotations

import os
import sys
import types
from functools import cache
from typing import Any

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
    return rs


def robosuite_version() -> str:
    """Installed robosuite version, e.g. '1.5.2'."""
    return str(robosuite().__version__)
