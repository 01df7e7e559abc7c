"""Which simulator an evaluation suite runs on: MetaWorld (mt10, mt50, mt1:<task>) or robosuite.

``robosuite:<task>`` (or ``robosuite``) evaluates on ``vla.sim.robosuite`` with one robot and
action space (``--robot``, ``--controller``); everything else is a MetaWorld suite. The rollout
workers build their env through ``make_env`` from the plain dict ``sim_spec`` returns.
"""

from __future__ import annotations

from typing import Any

from vla.errors import VlaError


def sim_spec(suite: str, robot: str | None = None, controller: str | None = None) -> dict[str, Any] | None:
    """``{"kind": "robosuite", "robot", "controller"}`` for a robosuite suite, None for MetaWorld."""
    from vla.sim.robosuite.tasks import is_robosuite_suite

    if not is_robosuite_suite(suite):
        if robot is not None or controller is not None:
            raise VlaError(f"--robot/--controller apply to robosuite suites only, not {suite!r}")
        return None
    from vla.sim.robosuite.robots import robot_info

    ctrl = controller or "osc"
    if ctrl not in ("osc", "joint_velocity"):
        raise VlaError(f"unknown controller {ctrl!r}; valid: osc, joint_velocity")
    return {"kind": "robosuite", "robot": robot_info(robot or "Panda").name, "controller": ctrl}


def make_eval_suite(suite: str):
    """The suite object (tasks, instructions, task_index) for ``suite``."""
    from vla.sim.robosuite.tasks import is_robosuite_suite

    if is_robosuite_suite(suite):
        from vla.sim.robosuite.tasks import make_robosuite_suite

        return make_robosuite_suite(suite)
    from vla.sim import make_suite

    return make_suite(suite)


def make_env(task: str, cameras: tuple[str, ...], image_size: int, max_steps: int, spec: dict[str, Any] | None):
    """The evaluation env of ``task`` (MetaWorldEnv when ``spec`` is None)."""
    if spec is None:
        from vla.sim import MetaWorldEnv

        return MetaWorldEnv(task, cameras=cameras, image_size=image_size, max_steps=max_steps)
    from vla.sim.robosuite.env import RobosuiteEnv

    return RobosuiteEnv(task, spec["robot"], controller=spec["controller"], cameras=cameras, image_size=image_size,
                        max_steps=max_steps)


def embodiment_of(spec: dict[str, Any] | None) -> str:
    """The embodiment name the collector of this simulator writes (``vla.sim.collect``, robosuite's
    ``collect.embodiment``): what a multi-robot policy knows the evaluated robot by."""
    if spec is None:
        return "metaworld_sawyer"
    from vla.sim.robosuite.robots import robot_info

    return f"{robot_info(spec['robot']).robot_type}_{spec['controller']}"
