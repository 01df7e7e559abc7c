"""A multi-robot simulated suite on robosuite: Lift, Stack and PickPlaceCan on several arms.

``RobosuiteEnv`` gives the observation dict of ``vla.sim.MetaWorldEnv`` (images, named state,
instruction), two action spaces (OSC end-effector deltas, joint velocities), seeded scenes and a
scripted expert; ``collect_robosuite`` writes one dataset per robot. robosuite itself is imported
only when an environment is built (the ``robosuite`` extra).
"""

from __future__ import annotations

from typing import Any

from vla.sim.robosuite.robots import ROBOTS, RobotInfo, robot_info, robot_names
from vla.sim.robosuite.tasks import TASKS, RobosuiteSuite, is_robosuite_suite, make_robosuite_suite, task_name

__all__ = [
    "ROBOTS",
    "TASKS",
    "RobosuiteEnv",
    "RobosuiteSuite",
    "RobotInfo",
    "collect_robosuite",
    "is_robosuite_suite",
    "make_robosuite_suite",
    "robot_info",
    "robot_names",
    "task_name",
]


def __getattr__(name: str) -> Any:
    if name == "RobosuiteEnv":
        from vla.sim.robosuite.env import RobosuiteEnv

        return RobosuiteEnv
    if name == "collect_robosuite":
        from vla.sim.robosuite.collect import collect_robosuite

        return collect_robosuite
    raise AttributeError(f"module 'vla.sim.robosuite' has no attribute {name!r}")
