"""Scripted experts for the robosuite tasks: state machines over privileged object poses.

Each expert returns a world-frame step command ``(dpos [m], drot [rad, rotation vector],
gripper [-1 open .. +1 close])``; ``RobosuiteEnv.command_to_action`` turns it into an OSC action
or, for the joint-velocity action space, joint velocities through the arm's Jacobian.

The grasp orientation is the robot's own top-down orientation at reset, turned about the world
vertical by the smallest angle that lines its fingers up with the object's faces (cubes are
symmetric under quarter turns). Phases advance when the grip site is within a tolerance of the
phase's target, or after a phase's step budget (so a slightly unreachable target never stalls).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

GRIP_OPEN, GRIP_CLOSE = -1.0, 1.0
MAX_STEP_M = 0.03  # largest commanded displacement per step
MAX_ROT_RAD = 0.2  # largest commanded rotation per step
CLOSE_MIN_STEPS = 6  # the gripper closes (or opens) for at least this many steps ...
CLOSE_MAX_STEPS = 80  # ... until its joints stop moving, or this many steps


def expert_id(task: str) -> str:
    """Stable collector id, e.g. ``vla.sim.robosuite.experts.LiftExpert``."""
    return f"vla.sim.robosuite.experts.{EXPERTS[task].__name__}"


def make_expert(task: str, env: Any) -> Expert:
    """A fresh expert for ``task`` bound to ``env`` (a reset ``RobosuiteEnv``)."""
    return EXPERTS[task](env)


def _yaw(axis: np.ndarray) -> float:
    return float(np.arctan2(axis[1], axis[0]))


def _wrap(angle: float, period: float) -> float:
    """``angle`` wrapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def _rot_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (world frame) that turns ``current`` into ``target``."""
    return Rotation.from_matrix(target @ current.T).as_rotvec()


class Expert:
    """Base state machine: a list of phases, each a method returning (target eef pos, gripper, done)."""

    phases: tuple[str, ...] = ()

    def __init__(self, env: Any):
        self.env = env
        self.sim = env.sim_env
        self.phase = 0
        self.t_phase = 0
        self.home_rot = env.eef_rot  # top-down orientation at reset
        self.grasp_rot = self.home_rot

    @property
    def phase_name(self) -> str:
        return self.phases[min(self.phase, len(self.phases) - 1)]

    def act(self) -> tuple[np.ndarray, np.ndarray, float]:
        eef = self.env.eef_pos
        target, grip, done = getattr(self, f"_{self.phase_name}")(eef)
        if done and self.phase < len(self.phases) - 1:
            self.phase += 1
            self.t_phase = 0
            target, grip, _ = getattr(self, f"_{self.phase_name}")(eef)
        self.t_phase += 1
        dpos = np.clip(target - eef, -MAX_STEP_M, MAX_STEP_M)
        drot = np.clip(_rot_error(self.grasp_rot, self.env.eef_rot), -MAX_ROT_RAD, MAX_ROT_RAD)
        return dpos, drot, grip

    # helpers ------------------------------------------------------------
    def body_pos(self, body_id: int) -> np.ndarray:
        return self.env.data.xpos[body_id].copy()

    def align_to_box(self, body_id: int) -> None:
        """Grasp orientation: home orientation turned about z to the nearest quarter turn of the box."""
        box_yaw = _yaw(self.env.data.xmat[body_id].reshape(3, 3)[:, 0])
        delta = _wrap(box_yaw - _yaw(self.home_rot[:, 0]), np.pi / 2)
        self.grasp_rot = Rotation.from_rotvec([0.0, 0.0, delta]).as_matrix() @ self.home_rot

    def reached(self, eef: np.ndarray, target: np.ndarray, tol: float = 0.01, rot_tol: float = 0.1) -> bool:
        rot_err = float(np.linalg.norm(_rot_error(self.grasp_rot, self.env.eef_rot)))
        return bool(np.linalg.norm(target - eef) < tol and rot_err < rot_tol)

    def timed_out(self, budget: int) -> bool:
        return self.t_phase >= budget

    def gripper_settled(self) -> bool:
        """True once the gripper joints have stopped moving (after CLOSE_MIN_STEPS), or after CLOSE_MAX_STEPS."""
        q = self.env.gripper_qpos
        moved = float(np.max(np.abs(q - self._last_grip))) if self.t_phase > 0 else np.inf
        self._last_grip = q
        return (self.t_phase >= CLOSE_MIN_STEPS and moved < 2e-3) or self.t_phase >= CLOSE_MAX_STEPS


class _PickMixin(Expert):
    """Approach above an object, descend, close: shared first phases of the pick tasks."""

    above = 0.10  # approach height over the grasp point
    grasp_dz = 0.0  # grasp point relative to the object's centre

    def object_id(self) -> int:
        raise NotImplementedError

    def grasp_point(self) -> np.ndarray:
        return self.body_pos(self.object_id()) + np.array([0.0, 0.0, self.grasp_dz])

    def _approach(self, eef):
        if self.t_phase == 0:
            self.align_to_box(self.object_id())
        target = self.grasp_point() + np.array([0.0, 0.0, self.above])
        return target, GRIP_OPEN, self.reached(eef, target, 0.015) or self.timed_out(80)

    def _descend(self, eef):
        target = self.grasp_point()
        return target, GRIP_OPEN, self.reached(eef, target, 0.008) or self.timed_out(50)

    def _grasp(self, eef):
        if self.t_phase == 0:
            self.hold = eef.copy()
        return self.hold, GRIP_CLOSE, self.gripper_settled()


class LiftExpert(_PickMixin):
    """Lift: grasp the cube, raise it 20 cm above the table, hold."""

    phases = ("approach", "descend", "grasp", "lift", "hold")

    def object_id(self) -> int:
        return int(self.sim.cube_body_id)

    def _lift(self, eef):
        target = self.hold + np.array([0.0, 0.0, 0.20])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.02) or self.timed_out(60)

    def _hold(self, eef):
        return self.hold + np.array([0.0, 0.0, 0.20]), GRIP_CLOSE, False


class StackExpert(_PickMixin):
    """Stack: grasp cube A, carry it over cube B, lower it onto B, let go, back off upwards."""

    phases = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat")

    def object_id(self) -> int:
        return int(self.sim.cubeA_body_id)

    def _place_target(self) -> np.ndarray:
        """Where cube A's centre should go: on top of cube B (half sizes from the model)."""
        b = self.body_pos(int(self.sim.cubeB_body_id))
        ha = float(self.sim.cubeA.size[2])
        hb = float(self.sim.cubeB.size[2])
        return b + np.array([0.0, 0.0, ha + hb + 0.005])

    def _eef_for_cube(self, eef: np.ndarray, cube_target: np.ndarray) -> np.ndarray:
        return eef + (cube_target - self.body_pos(self.object_id()))

    def _lift(self, eef):
        target = self.hold + np.array([0.0, 0.0, 0.10])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.02) or self.timed_out(40)

    def _carry(self, eef):
        above = self._place_target() + np.array([0.0, 0.0, 0.05])
        target = self._eef_for_cube(eef, above)
        return target, GRIP_CLOSE, self.reached(eef, target, 0.01) or self.timed_out(80)

    def _lower(self, eef):
        target = self._eef_for_cube(eef, self._place_target())
        return target, GRIP_CLOSE, self.reached(eef, target, 0.006) or self.timed_out(40)

    def _release(self, eef):
        if self.t_phase == 0:
            self.hold = eef.copy()
        return self.hold, GRIP_OPEN, self.gripper_settled()

    def _retreat(self, eef):
        return self.hold + np.array([0.0, 0.0, 0.08]), GRIP_OPEN, False


class PickPlaceCanExpert(_PickMixin):
    """PickPlaceCan: grasp the can, lift it over the bin walls, carry it to its bin, lower, let go."""

    phases = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat")
    carry_z = 0.25  # above bin2's floor while carrying

    def object_id(self) -> int:
        return int(self.sim.obj_body_id["Can"])

    def _goal(self) -> np.ndarray:
        goal = np.array(self.sim.target_bin_placements[self.sim.object_to_id["can"]], dtype=np.float64)
        return goal

    def _lift(self, eef):
        target = np.array([*self.hold[:2], self.sim.bin2_pos[2] + self.carry_z])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.02) or self.timed_out(60)

    def _carry(self, eef):
        goal = self._goal()
        can = self.body_pos(self.object_id())
        target = np.array([eef[0] + goal[0] - can[0], eef[1] + goal[1] - can[1], self.sim.bin2_pos[2] + self.carry_z])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.015) or self.timed_out(100)

    def _lower(self, eef):
        target = np.array([eef[0], eef[1], self.sim.bin2_pos[2] + 0.12])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.015) or self.timed_out(40)

    def _release(self, eef):
        if self.t_phase == 0:
            self.hold = eef.copy()
        return self.hold, GRIP_OPEN, self.gripper_settled()

    def _retreat(self, eef):
        return self.hold + np.array([0.0, 0.0, 0.10]), GRIP_OPEN, False


EXPERTS: dict[str, type[Expert]] = {
    "Lift": LiftExpert,
    "Stack": StackExpert,
    "PickPlaceCan": PickPlaceCanExpert,
}
