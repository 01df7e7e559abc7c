"""A robosuite task on one robot with the observation dict of ``vla.sim.MetaWorldEnv``.

Observation: ``{"images": {camera: uint8 HxWx3}, "state": float32[D], "instruction": str}``.
The state is the robot's own layout, named by ``state_names``: end-effector position (world
frame, metres) and orientation (unit quaternion w, x, y, z, w >= 0) of the grip site, the
gripper's joint positions, then the arm's joint positions (radians).

Two action spaces (``controller``):

- ``"osc"``: 7 values in [-1, 1], an end-effector delta in the robot's base frame through
  robosuite's OSC_POSE controller (dx, dy, dz scaled to +-5 cm, drx, dry, drz an axis-angle
  scaled to +-0.5 rad per step) and the gripper (-1 open, +1 close);
- ``"joint_velocity"``: one value per arm joint (scaled to +-0.5 rad/s, robosuite's
  JOINT_VELOCITY controller) and the gripper.

A mobile base or torso (PandaOmron) is held still: its action dims are filled with zeros.

Scenes: robosuite samples object placements (and a small joint noise) from ``env.rng`` at every
reset; ``reset(seed=s)`` reseeds that generator, so the same seed gives the same scene whatever
happened before. The model is built once (``hard_reset=False``, fixed construction seed, so
object sizes do not vary between instances). Rendering goes through ``vla.sim.render`` (one
``mujoco.Renderer``, no shadows/reflections/skybox/multisampling) on robosuite's own model and data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla.errors import VlaError
from vla.sim.instruction_picker import InstructionPicker
from vla.sim.robosuite import experts as _experts
from vla.sim.robosuite._backend import robosuite
from vla.sim.robosuite.robots import robot_info
from vla.sim.robosuite.tasks import instructions, task_name

os.environ.setdefault("MUJOCO_GL", "egl")

CONTROL_RATE_HZ = 20.0  # robosuite's usual control frequency (25 physics steps of 2 ms)
DEFAULT_CAMERAS: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
DEFAULT_IMAGE_SIZE = 128
CONTROLLERS = ("osc", "joint_velocity")
MAX_STEPS = {"Lift": 150, "Stack": 300, "PickPlaceCan": 400}
OSC_POS_SCALE = 0.05  # metres per step at action 1 (robosuite OSC_POSE output_max)
OSC_ROT_SCALE = 0.5  # radians per step at action 1
JOINT_VEL_SCALE = 0.5  # rad/s at action 1 (robosuite JOINT_VELOCITY output_max)


def controller_config(robot: str, controller: str) -> dict[str, Any]:
    """robosuite composite controller config of ``robot`` with its arm under ``controller``."""
    import copy

    rs = robosuite()
    cfg = copy.deepcopy(rs.load_composite_controller_config(controller="BASIC", robot=robot))
    arm = cfg["body_parts"]["right"]
    if controller == "osc":
        if arm["type"] != "OSC_POSE":
            raise VlaError(f"robot {robot}: its default arm controller is {arm['type']}, expected OSC_POSE")
    elif controller == "joint_velocity":
        jv = copy.deepcopy(rs.load_part_controller_config(default_controller="JOINT_VELOCITY"))
        jv["output_max"], jv["output_min"] = JOINT_VEL_SCALE, -JOINT_VEL_SCALE
        jv["gripper"] = arm.get("gripper", {"type": "GRIP"})
        cfg["body_parts"]["right"] = jv
    else:
        raise VlaError(f"unknown controller {controller!r}; valid: {', '.join(CONTROLLERS)}")
    return cfg


class RobosuiteEnv:
    """One robosuite task on one robot: images + named state + instruction, seeded scenes, a scripted expert."""

    def __init__(
        self,
        task: str,
        robot: str = "Panda",
        controller: str = "osc",
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        image_size: int = DEFAULT_IMAGE_SIZE,
        seed: int = 0,
        max_steps: int | None = None,
        instruction: str | None = None,
    ):
        self.task = task_name(task)
        self.info = robot_info(robot)
        self.robot = self.info.name
        if controller not in CONTROLLERS:
            raise VlaError(f"unknown controller {controller!r}; valid: {', '.join(CONTROLLERS)}")
        self.controller = controller
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.max_steps = int(max_steps if max_steps is not None else MAX_STEPS[self.task])
        if self.max_steps < 1:
            raise VlaError(f"max_steps must be >= 1, got {self.max_steps}")
        self.control_rate_hz = CONTROL_RATE_HZ
        self._instructions = InstructionPicker(instructions(self.task, "train"), instruction, salt=0x2157, seed=seed)
        rs = robosuite()
        self._env = rs.make(
            self.task, robots=self.robot, controller_configs=controller_config(self.robot, controller),
            has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False, use_object_obs=True,
            reward_shaping=False, hard_reset=False, ignore_done=True, horizon=self.max_steps + 1,
            control_freq=int(CONTROL_RATE_HZ), seed=0,
        )
        for geom in self.info.no_collision:
            gid = self._env.sim.model._model.geom(geom).id
            self._env.sim.model._model.geom_contype[gid] = 0
            self._env.sim.model._model.geom_conaffinity[gid] = 0
        self._robot = self._env.robots[0]
        self._arm = self._robot.arms[0]
        split = dict(self._robot.composite_controller._action_split_indexes)
        self._arm_slice = slice(*split[self._arm])
        self._grip_slice = slice(*split[f"{self._arm}_gripper"])
        self._full_dim = int(self._env.action_dim)
        self.model = self._env.sim.model._model
        self.data = self._env.sim.data._data
        self._site = int(self._robot.eef_site_id[self._arm])
        self._arm_qpos = np.asarray(self._robot._ref_joint_pos_indexes)
        self._arm_qvel = np.asarray(self._robot._ref_joint_vel_indexes)
        self._grip_qpos = np.asarray(self._robot._ref_gripper_joint_pos_indexes[self._arm])
        self.joint_names = [j.split("_", 1)[1] if "_" in j else j for j in self._robot.robot_joints]
        grip_joints = list(self._robot.gripper[self._arm].joints)
        self._grip_prefix = str(self._robot.gripper[self._arm].naming_prefix)
        grip_range = np.array([self.model.jnt_range[self.model.joint(j).id] for j in grip_joints]).reshape(-1, 2)
        span = np.ptp(grip_range, axis=1)
        self._grip_low, self._grip_span = grip_range[:, 0], np.where(span > 0, span, 1.0)  # unlimited: radians
        self.gripper_joint_names = [j.split("_", 1)[1] if "_" in j else j for j in grip_joints]
        self.state_names = (["eef_x", "eef_y", "eef_z", "eef_qw", "eef_qx", "eef_qy", "eef_qz"]
                            + [f"gripper_{n}" for n in self.gripper_joint_names]
                            + [f"joint_{n}" for n in self.joint_names])
        if controller == "osc":
            self.action_names = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
        else:
            self.action_names = [f"vel_{n}" for n in self.joint_names] + ["gripper"]
        self.action_dim = len(self.action_names)
        self.gripper_dims = [self.action_dim - 1]
        arm_dims = self._arm_slice.stop - self._arm_slice.start
        if arm_dims != self.action_dim - 1:
            raise VlaError(f"robot {self.robot}: robosuite arm action has {arm_dims} dims, "
                           f"expected {self.action_dim - 1} for controller {controller}")
        self._renderer = None
        if self.cameras:
            from vla.sim.render import CameraRenderer

            self._renderer = CameraRenderer(self.model, self.data, self.cameras, self.image_size)
        self._scene_seed = np.random.SeedSequence(int(seed))
        self._expert: _experts.Expert | None = None
        self.instruction = self._instructions.first
        self.steps = 0
        self._started = False
        self.expert_id = _experts.expert_id(self.task)

    # ------------------------------------------------------------------ gym API
    def reset(self, seed: int | None = None, instruction: str | None = None) -> tuple[dict, dict]:
        """New episode: fresh object placement (the same for the same ``seed``) and instruction."""
        if seed is not None:
            self._instructions.reseed(int(seed))
            state = np.random.default_rng(int(seed)).bit_generator.state
        else:
            state = np.random.default_rng(self._scene_seed.spawn(1)[0]).bit_generator.state
        # the placement sampler and the robot's joint noise hold this generator: reseed it in place
        self._env.rng.bit_generator.state = state
        self._env.reset()
        self.steps = 0
        self._started = True
        self.instruction = self._instructions.pick(instruction)
        self._expert = _experts.make_expert(self.task, self)
        return self._observation(), {"task": self.task, "robot": self.robot, "seed": seed,
                                     "instruction": self.instruction}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """Apply one action (``action_dim`` values, clipped to [-1, 1]); returns obs, reward, terminated,
        truncated, info (``info["success"]`` is robosuite's success check)."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.steps >= self.max_steps:
            raise RuntimeError(f"episode is over ({self.max_steps} steps): call reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(f"action must have {self.action_dim} values ({', '.join(self.action_names)}), "
                             f"got shape {a.shape}")
        a = np.clip(a, -1.0, 1.0)
        full = np.zeros(self._full_dim)
        full[self._arm_slice] = a[:-1]
        full[self._grip_slice] = a[-1]
        _, reward, _, _ = self._env.step(full)
        self.steps += 1
        success = bool(self._env._check_success())
        truncated = self.steps >= self.max_steps
        return self._observation(), float(reward), False, truncated, {"success": success, "steps": self.steps}

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state (this env's action space), float32 in [-1, 1]."""
        if self._expert is None:
            raise RuntimeError("call reset() before expert_action()")
        dpos, drot, grip = self._expert.act()
        return self.command_to_action(dpos, drot, grip)

    def close(self) -> None:
        """Release the renderer and the simulator."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._env.close()

    def __enter__(self) -> RobosuiteEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ privileged views (experts)
    @property
    def eef_pos(self) -> np.ndarray:
        """Grip-site position, world frame."""
        return self.data.site_xpos[self._site].copy()

    @property
    def eef_rot(self) -> np.ndarray:
        """Grip-site orientation, 3x3 world rotation."""
        return self.data.site_xmat[self._site].reshape(3, 3).copy()

    @property
    def gripper_qpos(self) -> np.ndarray:
        """The gripper's joint positions."""
        return self.data.qpos[self._grip_qpos].copy()

    @property
    def gripper_qpos_unit(self) -> np.ndarray:
        """The gripper's joint positions as fractions of each joint's range (radians where unlimited)."""
        return (self.gripper_qpos - self._grip_low) / self._grip_span

    @property
    def finger_axis(self) -> np.ndarray | None:
        """Unit vector from the right to the left finger pad, in the grip site's frame (None if unknown)."""
        names = {self.model.geom(i).name: i for i in range(self.model.ngeom)}
        important = self._robot.gripper[self._arm].important_geoms
        pads = {}
        for side in ("left", "right"):
            ids = [names[n] for n in important.get(f"{side}_fingerpad", []) if n in names]
            if not ids:  # some grippers (xArm) list pad names their model does not have
                ids = [i for n, i in names.items() if n.startswith(self._grip_prefix) and f"{side}_finger_pad" in n]
            if not ids:
                return None
            pads[side] = self.data.geom_xpos[ids].mean(axis=0)
        d = self.eef_rot.T @ (pads["left"] - pads["right"])
        norm = float(np.linalg.norm(d))
        return d / norm if norm > 1e-6 else None

    @property
    def base_pos(self) -> np.ndarray:
        """The arm controller's reference (robot base) position, world frame."""
        ctrl = self._robot.composite_controller.part_controllers[self._arm]
        return np.asarray(ctrl.origin_pos, dtype=np.float64).copy()

    @property
    def base_rot(self) -> np.ndarray:
        """The arm controller's reference (robot base) orientation, 3x3 world rotation."""
        ctrl = self._robot.composite_controller.part_controllers[self._arm]
        if ctrl.origin_ori is None:
            return np.eye(3)
        return np.asarray(ctrl.origin_ori).reshape(3, 3)

    @property
    def sim_env(self) -> Any:
        """The wrapped robosuite environment (privileged: objects, sites, success check)."""
        return self._env

    def command_to_action(self, dpos: np.ndarray, drot: np.ndarray, grip: float) -> np.ndarray:
        """Turn a world-frame step command (displacement in m, rotation vector in rad, gripper -1..1)
        into this env's action.

        OSC: rotate into the base frame and divide by the controller's scales. Joint velocity: the
        twist ``(dpos, drot) * control rate`` through the damped pseudo-inverse of the grip site's
        Jacobian over the arm joints, scaled down as a whole if a joint would exceed its limit.
        """
        dpos = np.asarray(dpos, dtype=np.float64)
        drot = np.asarray(drot, dtype=np.float64)
        if self.controller == "osc":
            r = self.base_rot
            arm = np.concatenate([r.T @ dpos / OSC_POS_SCALE, r.T @ drot / OSC_ROT_SCALE])
        else:
            import mujoco

            jacp = np.zeros((3, self.model.nv))
            jacr = np.zeros((3, self.model.nv))
            mujoco.mj_jacSite(self.model, self.data, jacp, jacr, self._site)
            jac = np.vstack([jacp[:, self._arm_qvel], jacr[:, self._arm_qvel]])
            twist = np.concatenate([dpos, drot]) * CONTROL_RATE_HZ
            lam = 0.05
            qdot = jac.T @ np.linalg.solve(jac @ jac.T + lam**2 * np.eye(6), twist)
            arm = qdot / JOINT_VEL_SCALE
            peak = float(np.max(np.abs(arm))) if arm.size else 0.0
            if peak > 1.0:
                arm = arm / peak
        out = np.clip(np.concatenate([arm, [grip]]), -1.0, 1.0)
        return out.astype(np.float32)

    # ------------------------------------------------------------------ observation
    def render(self) -> dict[str, np.ndarray]:
        """Images of every camera for the current (forwarded) state; {} without cameras."""
        return self._renderer.render(self.data) if self._renderer is not None else {}

    @property
    def state(self) -> np.ndarray:
        """The named state vector (``state_names``), float32."""
        import mujoco

        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._site])
        if quat[0] < 0:
            quat = -quat
        qpos = self.data.qpos
        return np.concatenate([self.eef_pos, quat, qpos[self._grip_qpos], qpos[self._arm_qpos]]).astype(np.float32)

    def _observation(self) -> dict:
        return {"images": self.render(), "state": self.state, "instruction": self.instruction}
