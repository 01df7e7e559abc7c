"""Scripted-expert rollouts: one episode of any env with ``expert_action()`` (MetaWorld, robosuite).

Optional perturbations (DART-style, Laskey et al. 2017) make demonstrations that a policy cannot imitate
from the arm's own motion alone: ``start_steps`` unrecorded steps of one random arm action before the
episode starts (the arm then starts away from its fixed home), and ``action_noise`` Gaussian noise added to
the executed arm actions while the recorded label stays the expert's clean action for the state it saw.
The gripper (last action dim) is never perturbed. Without them, in MetaWorld's reach the hand's position
tells where the goal is for every frame but the first, and a policy learns that instead of the goal.

Also the worker side of parallel collection: each worker process keeps its own environment
(rebuilt when the task changes) and returns finished episodes as numpy arrays.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ExpertEpisode:
    """A recorded expert episode; frame t pairs the observation at t with the action taken at t."""

    task: str
    attempt: int
    seed: int
    instruction: str
    success: bool
    success_step: int | None  # index of the first action after which the task was solved
    steps: int  # actions executed (rendered frames per camera = steps + 1)
    states: np.ndarray  # float32 [T, state dim]
    actions: np.ndarray  # float32 [T, action dim]
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> uint8 [T, H, W, 3]
    seconds: float = 0.0
    env_states: np.ndarray | None = None  # float32 [T, 17]: object poses + goal (vla.sim.env.ENV_STATE_NAMES)


def run_expert_episode(env, seed: int, attempt: int = 0, steps_after_success: int = 10,
                       keep_failed: bool = False, action_noise: float = 0.0, start_steps: int = 0) -> ExpertEpisode:
    """Reset ``env`` with ``seed``, let the expert act until ``steps_after_success`` steps past the
    first success (or the step limit); failed episodes come back without frames unless ``keep_failed``.
    ``start_steps`` and ``action_noise``: the perturbations of the module docstring, drawn from ``seed``."""
    t0 = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng([seed, 0xDA27])
    if start_steps > 0:  # one random arm direction held for a random number of unrecorded steps
        n = int(rng.integers(0, start_steps + 1))
        direction = np.zeros_like(env.expert_action())  # the env's action shape and dtype
        direction[:-1] = rng.uniform(-1.0, 1.0, direction.shape[0] - 1)
        for _ in range(n):
            obs, _, terminated, truncated, _ = env.step(direction)
            if terminated or truncated:
                break
    states, actions, env_states = [], [], []
    records_env_state = hasattr(type(env), "environment_state")  # MetaWorld's privileged state, where the env has one
    images: dict[str, list[np.ndarray]] = {c: [] for c in env.cameras}
    success_step = None
    steps = 0
    while True:
        action = env.expert_action()
        states.append(obs["state"])
        if records_env_state:
            env_states.append(env.environment_state)
        actions.append(action)
        for cam, img in obs["images"].items():
            images[cam].append(img)
        executed = action
        if action_noise > 0:
            executed = action.copy()
            executed[:-1] = np.clip(action[:-1] + rng.normal(0.0, action_noise, action.shape[0] - 1), -1.0, 1.0)
        obs, _, terminated, truncated, info = env.step(executed)
        steps += 1
        if info["success"] and success_step is None:
            success_step = steps - 1
        if success_step is not None and steps - 1 - success_step >= steps_after_success:
            break
        if terminated or truncated:
            break
    success = success_step is not None
    keep = success or keep_failed
    return ExpertEpisode(
        task=env.task, attempt=attempt, seed=seed, instruction=env.instruction, success=success,
        success_step=success_step, steps=steps,
        states=np.stack(states).astype(np.float32) if keep else np.zeros((0, len(states[0])), np.float32),
        actions=np.stack(actions).astype(np.float32) if keep else np.zeros((0, len(actions[0])), np.float32),
        images={c: np.stack(v) for c, v in images.items()} if keep else {},
        seconds=time.perf_counter() - t0,
        env_states=np.stack(env_states).astype(np.float32) if keep and env_states else None,
    )


# ---------------------------------------------------------------- worker process side
_CONFIG: dict = {}
_ENV = None


def init_worker(config: dict) -> None:
    """Pool initializer: remember the env settings; one software-GL thread per worker process."""
    os.environ.setdefault("LP_NUM_THREADS", str(config.get("gl_threads", 1)))
    os.environ.setdefault("MUJOCO_GL", "egl")
    _CONFIG.clear()
    _CONFIG.update(config)


def worker_episode(task: str, attempt: int, seed: int) -> ExpertEpisode:
    """Run one attempt in this worker, reusing the env while the task stays the same."""
    global _ENV
    if _ENV is None or _ENV.task != task:
        from vla.sim.env import MetaWorldEnv

        if _ENV is not None:
            _ENV.close()
        _ENV = MetaWorldEnv(task, cameras=_CONFIG["cameras"], image_size=_CONFIG["image_size"],
                            seed=seed, max_steps=_CONFIG["max_steps"])
    return run_expert_episode(_ENV, seed, attempt, _CONFIG["steps_after_success"],
                              action_noise=_CONFIG.get("action_noise", 0.0), start_steps=_CONFIG.get("start_steps", 0))
