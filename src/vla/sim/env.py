"""Gymnasium-style MetaWorld environment that shows a policy only what a robot would see.

Observation: ``{"images": {camera: uint8 HxWx3}, "state": float32[4], "instruction": str}``
where state is the hand position (x, y, z, metres) and the gripper opening (0 closed .. 1 open).
Object and goal positions stay inside (the scripted expert still reads them, through
``expert_action()``); ``environment_state`` exposes them for recording as training targets
(``observation.environment_state``: an auxiliary loss may predict them; a policy never reads them).

Fixes over plain metaworld:
- new random object/goal positions at every reset (metaworld's ``_freeze_rand_vec`` released),
  drawn from the env's own seeded generator: ``reset(seed=s)`` always gives the same scene;
- the simulation is forwarded after reset, so the first frame shows the goal where it is now
  (metaworld leaves the previous episode's goal marker in place until the first step);
- fast rendering (see ``vla.sim.render``), corner cameras upright.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import mujoco  # vla.sim's __init__ has set MUJOCO_GL=egl before this import
import numpy as np

from vla.sim.defaults import CONTROL_RATE_HZ, DEFAULT_CAMERAS, DEFAULT_IMAGE_SIZE
from vla.sim.env_state import ENV_STATE_NAMES
from vla.sim.experts import expert_id, make_expert
from vla.sim.instruction_picker import InstructionPicker
from vla.sim.render import CameraRenderer
from vla.sim.suites import load_instructions, mt50_tasks

__all__ = ["CONTROL_RATE_HZ", "DEFAULT_CAMERAS", "DEFAULT_IMAGE_SIZE", "ENV_STATE_NAMES", "MetaWorldEnv"]


class MetaWorldEnv:
    """One MetaWorld task with image observations, seeded random scenes and a scripted expert."""

    def __init__(
        self,
        task: str,
        cameras: Sequence[str] = DEFAULT_CAMERAS,
        image_size: int = DEFAULT_IMAGE_SIZE,
        seed: int = 0,
        max_steps: int = 500,
        instruction: str | None = None,
    ):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        if task not in ALL_V3_ENVIRONMENTS:
            raise ValueError(f"unknown MetaWorld task {task!r}; valid tasks: {', '.join(mt50_tasks())}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.task = task
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.max_steps = int(max_steps)
        self.control_rate_hz = CONTROL_RATE_HZ
        self.expert_id = expert_id(task)
        self._instructions = InstructionPicker(load_instructions()[task]["train"], instruction, salt=0x1757, seed=seed)

        mw = ALL_V3_ENVIRONMENTS[task]()
        mw._partially_observable = False  # the expert needs the goal; the policy never sees it
        mw.__dict__.pop("sawyer_observation_space", None)  # recompute the cached obs space
        mw._set_task_called = True
        mw._freeze_rand_vec = False  # new positions at every reset ...
        mw.seeded_rand_vec = True  # ... drawn from mw.np_random, which we seed
        mw.max_path_length = self.max_steps
        mw.seed(seed)
        self._mw = mw
        assert abs(mw.dt * CONTROL_RATE_HZ - 1.0) < 1e-9, f"unexpected metaworld control period {mw.dt}"
        self._renderer = CameraRenderer(mw.model, mw.data, self.cameras, self.image_size)
        self._expert = make_expert(task)
        self._full_obs: np.ndarray | None = None
        self.instruction = self._instructions.first
        self.steps = 0

    # ------------------------------------------------------------------ gym API
    def reset(self, seed: int | None = None, instruction: str | None = None) -> tuple[dict, dict]:
        """Start a new episode with fresh random positions (reproducible when ``seed`` is given)."""
        if seed is not None:
            self._mw.seed(int(seed))
            self._instructions.reseed(int(seed))
        self._mw.reset()
        # Forward so site/body positions (goal marker) match the new state before the first frame.
        mujoco.mj_forward(self._mw.model, self._mw.data)
        curr = self._mw._get_curr_obs_combined_no_goal()
        self._mw._prev_obs = curr.copy()
        self._full_obs = np.hstack((curr, curr, self._mw._get_pos_goal())).astype(np.float64)
        self._expert = make_expert(self.task)
        self.steps = 0
        self.instruction = self._instructions.pick(instruction)
        return self._observation(), {"task": self.task, "seed": seed, "instruction": self.instruction}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """Apply a float32[4] action (clipped to [-1, 1]); returns obs, reward, terminated, truncated, info."""
        if self._full_obs is None:
            raise RuntimeError("call reset() before step()")
        if self.steps >= self.max_steps:
            raise RuntimeError(f"episode is over ({self.max_steps} steps): call reset()")
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (4,):
            raise ValueError(f"action must have 4 values (dx, dy, dz, gripper), got shape {a.shape}")
        a = np.clip(a, -1.0, 1.0)
        full, reward, _, _, mw_info = self._mw.step(a)
        self._full_obs = np.asarray(full, dtype=np.float64)
        self.steps += 1
        truncated = self.steps >= self.max_steps
        info = {"success": bool(mw_info.get("success", 0.0) >= 1.0), "steps": self.steps}
        return self._observation(), float(reward), False, truncated, info

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current state, float32[4] in [-1, 1]."""
        if self._full_obs is None:
            raise RuntimeError("call reset() before expert_action()")
        with warnings.catch_warnings():  # the experts' gains saturate on purpose; actions are clipped
            warnings.simplefilter("ignore", UserWarning)
            a = np.asarray(self._expert.get_action(self._full_obs), dtype=np.float32)
        return np.clip(a, -1.0, 1.0)

    def close(self) -> None:
        """Release the renderer and the simulator."""
        self._renderer.close()
        self._mw.close()

    def __enter__(self) -> MetaWorldEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers
    def render(self) -> dict[str, np.ndarray]:
        """Images of every camera for the current state (already forwarded)."""
        return self._renderer.render(self._mw.data)

    @property
    def state(self) -> np.ndarray:
        """Hand xyz + gripper opening, float32[4]."""
        assert self._full_obs is not None
        return self._full_obs[:4].astype(np.float32)

    @property
    def environment_state(self) -> np.ndarray:
        """Object poses and the goal position (see ENV_STATE_NAMES), float32[17]: privileged, for recording."""
        assert self._full_obs is not None
        return np.concatenate([self._full_obs[4:18], self._full_obs[36:39]]).astype(np.float32)

    def _observation(self) -> dict:
        return {"images": self.render(), "state": self.state, "instruction": self.instruction}
