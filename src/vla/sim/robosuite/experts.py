"""Scripted experts for the robosuite tasks: state machines over privileged object poses.

Each expert returns a world-frame step command ``(dpos [m], drot [rad, rotation vector],
gripper [-1 open .. +1 close])``; ``RobosuiteEnv.command_to_action`` turns it into an OSC action
or, for the joint-velocity action space, joint velocities through the arm's Jacobian.

The grasp orientation is the robot's own top-down orientation at reset, turned about the world
vertical by the smallest angle that lines its fingers up with the object's faces (cubes are
symmetric under quarter turns). Phases advance when the grip site is within a tolerance of the
phase's target, or after a phase's step budget (so a slightly unreachable target never stalls).
The approach waits for the grip site to settle; a gripper counts as closed once its joints stop
moving. When the arm stalls short of a target (its reach with vertical fingers), the can expert
leans the fingers outwards, away from the base, and aims at the reachable corner of the bin.
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
SETTLE_WINDOW = 4  # "stopped moving": over this many steps ...
SETTLE_MOVE = 0.02  # ... the joints moved less than this fraction of their range, on average
SETTLED_SPEED_M = 0.002  # the approach ends only once the grip site moves less than this per step
STALL_WINDOW = 20  # "stalled": over this many steps, ...
STALL_PROGRESS_M = 0.005  # ... the distance to its target shrank by less than this


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


def _leaned(rot: np.ndarray, outward: np.ndarray, angle: float) -> np.ndarray:
    """``rot`` turned so that the fingers (world -z) lean by ``angle`` towards the horizontal ``outward``."""
    d = np.array([outward[0], outward[1], 0.0])
    axis = np.cross([0.0, 0.0, -1.0], d / max(float(np.linalg.norm(d)), 1e-9))
    return Rotation.from_rotvec(angle * axis).as_matrix() @ rot


class Expert:
    """Base state machine: a list of phases, each a method returning (target eef pos, gripper, done)."""

    phases: tuple[str, ...] = ()

    def __init__(self, env: Any):
        self.env = env
        self.sim = env.sim_env
        self.phase = 0
        self.t_phase = 0
        self.home_rot = env.eef_rot  # top-down orientation at reset
        self._prev_eef: np.ndarray | None = None
        self.speed = np.inf  # grip-site displacement over the last step [m]
        self.grasp_rot = self.home_rot

    @property
    def phase_name(self) -> str:
        return self.phases[min(self.phase, len(self.phases) - 1)]

    def act(self) -> tuple[np.ndarray, np.ndarray, float]:
        eef = self.env.eef_pos
        self.speed = float(np.linalg.norm(eef - self._prev_eef)) if self._prev_eef is not None else np.inf
        self._prev_eef = eef
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
        """True once the gripper joints have stopped moving (after CLOSE_MIN_STEPS), or after CLOSE_MAX_STEPS.

        "Stopped" is judged over SETTLE_WINDOW steps in units of each joint's range, so a linkage
        gripper that keeps jittering a little on the object (Kinova3's three fingers) still settles.
        """
        if self.t_phase == 0:
            self._grip_history: list[np.ndarray] = []
        self._grip_history.append(self.env.gripper_qpos_unit)
        if self.t_phase >= CLOSE_MAX_STEPS:
            return True
        if self.t_phase < CLOSE_MIN_STEPS or len(self._grip_history) <= SETTLE_WINDOW:
            return False
        moved = float(np.mean(np.abs(self._grip_history[-1] - self._grip_history[-1 - SETTLE_WINDOW])))
        return moved < SETTLE_MOVE

    def stalled(self, eef: np.ndarray, target: np.ndarray) -> bool:
        """True when the distance to ``target`` shrank by less than STALL_PROGRESS_M over STALL_WINDOW steps."""
        if self.t_phase == 0:
            self._distances: list[float] = []
        self._distances.append(float(np.linalg.norm(target - eef)))
        if len(self._distances) <= STALL_WINDOW:
            return False
        return self._distances[-1 - STALL_WINDOW] - self._distances[-1] < STALL_PROGRESS_M


class _PickMixin(Expert):
    """Approach above an object, descend, close: shared first phases of the pick tasks."""

    above = 0.10  # approach height over the grasp point
    grasp_dz = 0.0  # grasp point relative to the object's centre

    def object_id(self) -> int:
        raise NotImplementedError

    def grasp_point(self) -> np.ndarray:
        return self.body_pos(self.object_id()) + np.array([0.0, 0.0, self.grasp_dz])

    lean_max = 0.0  # largest outward lean of the fingers [rad] when a target is out of reach (0: never)
    lean_step = 0.15  # the lean grows by this each time progress stalls

    def _approach(self, eef):
        if self.t_phase == 0:
            self.align_to_box(self.object_id())
            self.upright_rot, self.lean = self.grasp_rot, 0.0
        target = self.grasp_point() + np.array([0.0, 0.0, self.above])
        # settled over the object: arriving at speed overshoots, and the fingers land on its top
        settled = self.reached(eef, target, 0.015) and self.speed < SETTLED_SPEED_M
        done = settled or self.lean_when_stalled(eef, target, target) or self.timed_out(80)
        return target, GRIP_OPEN, done

    def _descend(self, eef):
        target = self.grasp_point()
        # no lean here: the fingers are beside the object
        return target, GRIP_OPEN, self.reached(eef, target, 0.008) or self.timed_out(50)

    def lean_when_stalled(self, eef: np.ndarray, target: np.ndarray, toward: np.ndarray) -> bool:
        """When progress to ``target`` stalls (the arm's reach with vertical fingers), lean the fingers
        by ``lean_step`` more towards ``toward``, away from the base. True once stalled at ``lean_max``."""
        if self.lean_max <= 0 or not self.stalled(eef, target):
            return False
        if self.lean >= self.lean_max:
            return True
        self.lean = min(self.lean + self.lean_step, self.lean_max)
        self.grasp_rot = _leaned(self.upright_rot, toward - self.env.base_pos, self.lean)
        self._distances = []
        return False

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

    near_b = 0.12  # cube B this close (horizontally) to A decides which pair of A's faces is grasped

    def object_id(self) -> int:
        return int(self.sim.cubeA_body_id)

    def align_to_box(self, body_id: int) -> None:
        """As the base, but with cube B close, grasp the faces that keep the open fingers off B's top."""
        super().align_to_box(body_id)
        a_to_b = self.body_pos(int(self.sim.cubeB_body_id)) - self.body_pos(body_id)
        fingers = self.env.finger_axis
        if fingers is None or float(np.linalg.norm(a_to_b[:2])) > self.near_b:
            return
        across = Rotation.from_rotvec([0.0, 0.0, np.pi / 2]).as_matrix() @ self.grasp_rot
        a_to_b = np.array([a_to_b[0], a_to_b[1], 0.0]) / np.linalg.norm(a_to_b[:2])
        if abs(float((across @ fingers) @ a_to_b)) < abs(float((self.grasp_rot @ fingers) @ a_to_b)):
            self.grasp_rot = across

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

    bin_margin = 0.07  # how far inside its bin quadrant's walls the can's centre is aimed
    lean_max = 0.45  # the can is round: the fingers may lean outwards to reach the bins' far corners

    def _goal(self) -> np.ndarray:
        """The point of the can's bin quadrant nearest the robot's base, ``bin_margin`` inside its walls.

        Any point of the quadrant counts as success (robosuite's ``not_in_bin``); its centre is out
        of reach of the shorter arms (Kinova3, xArm7) with the gripper kept vertical.
        """
        bin_id = self.sim.object_to_id["can"]
        half = np.asarray(self.sim.bin_size[:2], dtype=np.float64) / 2
        low = np.asarray(self.sim.bin2_pos[:2], dtype=np.float64) - half * np.array([bin_id in (0, 2), bin_id < 2])
        base = self.env.base_pos[:2]
        xy = np.clip(base, low + self.bin_margin, low + half - self.bin_margin)
        return np.array([*xy, self.sim.bin2_pos[2]])

    def _lift(self, eef):
        target = np.array([*self.hold[:2], self.sim.bin2_pos[2] + self.carry_z])
        return target, GRIP_CLOSE, self.reached(eef, target, 0.02) or self.timed_out(60)

    def _carry(self, eef):
        goal = self._goal()
        can = self.body_pos(self.object_id())
        target = np.array([eef[0] + goal[0] - can[0], eef[1] + goal[1] - can[1], self.sim.bin2_pos[2] + self.carry_z])
        done = self.reached(eef, target, 0.015) or self.lean_when_stalled(eef, target, goal) or self.timed_out(200)
        return target, GRIP_CLOSE, done

    def _lower(self, eef):
        target = np.array([eef[0], eef[1], self.sim.bin2_pos[2] + 0.12])
        done = self.reached(eef, target, 0.015) or self.stalled(eef, target) or self.timed_out(40)
        return target, GRIP_CLOSE, done

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
