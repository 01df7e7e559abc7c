"""Adaptation rollouts: the policy acts, the failure monitor scores every step, the scripted expert takes over.

One episode (``rollout``), in a worker process that keeps one policy and one environment:

- the policy acts from the scene of the job's seed; every chunk it predicts and every executed action feed a
  ``FailureMonitor``; the episode ends ``steps_after_success`` steps after the first success (as scripted
  demonstrations do) or after ``max_steps``;
- with a calibration and a dagger mode, the first alarm hands control to the scripted expert for the rest of the
  episode (HG-DAgger: the person intervenes); the frames from the takeover on, with the expert's actions, are
  the intervention episode. The policy's part before the takeover is not recorded: it is the behaviour that led
  to the alarm, which behaviour cloning should not imitate;
- without a calibration yet (the first round of a policy that has none) the policy runs to the end; the parent
  calibrates on the successes, finds where the alarm would have fired from the recorded signals (the same
  scores the online monitor computes), and ``takeover`` replays the executed actions up to that step from the
  same seed (the simulation is deterministic; checked) before the expert acts.

The expert gets ``expert_steps`` more steps; an intervention that does not reach success is discarded (counted).
A success with no alarm is kept as a policy rollout in the filtered modes. Frames leave the worker only for
episodes that are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.serve.monitor_signals import SIGNALS

DAGGER_MODES = ("dagger", "both")
FILTERED_MODES = ("filtered", "both")


@dataclass
class AdaptJob:
    task: str
    index: int          # rollout number of this task in this round
    seed: int


@dataclass
class TakeoverJob:
    task: str
    index: int
    seed: int
    actions: np.ndarray  # float32 [t + 1, 4]: the policy's actions executed before the expert takes over


@dataclass
class Recorded:
    """Frames kept for the dataset: frame i pairs the observation with the action taken from it."""

    method: str          # "policy_rollout" or "intervention"
    start_step: int      # episode step of the first recorded frame (the takeover step + 1 for interventions)
    states: np.ndarray   # float32 [T, 4]
    actions: np.ndarray  # float32 [T, 4]
    images: dict[str, np.ndarray]  # camera -> uint8 [T, H, W, 3]
    success_step: int | None       # index (within these frames) of the action after which the task was solved


@dataclass
class AdaptResult:
    task: str
    index: int
    seed: int
    instruction: str
    success: bool                   # the policy solved the task before any takeover
    steps: int                      # policy steps executed
    alarm_step: int | None          # first step whose score crossed the threshold (None: no alarm / no calibration)
    expert_success: bool | None     # None: the expert did not take over
    signals: np.ndarray             # float32 [steps, len(SIGNALS)] raw monitor signals of the policy's steps
    actions: np.ndarray             # float32 [steps, 4] the policy's executed actions
    states: np.ndarray              # float32 [steps, 4] the state each of those actions was taken from
    success_step: int | None = None  # policy step after which the task was solved
    recorded: Recorded | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


_STATE: dict[str, Any] = {}


def init_worker(config: dict[str, Any]) -> None:
    """Pool initializer (also called in-process): load the policy; remember the settings."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("LP_NUM_THREADS", "1")
    import torch

    from vla.models import Policy

    torch.set_num_threads(int(config.get("torch_threads", 1)))
    policy = Policy.from_pretrained(config["policy"])
    policy.eval()
    _STATE.clear()
    _STATE.update(config=config, policy=policy, env=None)


def _env(task: str):
    env = _STATE["env"]
    if env is None or env.task != task:
        from vla.sim import MetaWorldEnv

        if env is not None:
            env.close()
        cfg = _STATE["config"]
        env = MetaWorldEnv(task, cameras=tuple(cfg["cameras"]), image_size=cfg["image_size"],
                           max_steps=cfg["max_steps"] + cfg["expert_steps"] + 1)
        _STATE["env"] = env
    return env


def _monitor():
    from vla.serve.monitor import FailureMonitor, MonitorCalibration
    from vla.serve.monitor_signals import SignalConfig

    cfg = _STATE["config"]
    cal = MonitorCalibration.from_dict(cfg["calibration"]) if cfg.get("calibration") else None
    sc = cfg.get("signal_config") or {}
    signal_config = SignalConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in sc.items()})
    return FailureMonitor(cal, signal_config)


class _Frames:
    """Observation frames of the cameras, appended per step (only when recording)."""

    def __init__(self, cameras: tuple[str, ...]) -> None:
        self.images: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def add(self, obs: dict[str, Any], action: np.ndarray) -> None:
        for c, frames in self.images.items():
            frames.append(obs["images"][c])
        self.states.append(np.asarray(obs["state"], np.float32))
        self.actions.append(np.asarray(action, np.float32))

    def take(self, method: str, start: int, success_step: int | None) -> Recorded:
        return Recorded(method, start, np.stack(self.states), np.stack(self.actions),
                        {c: np.stack(v) for c, v in self.images.items()}, success_step)


def rollout(job: AdaptJob) -> AdaptResult:
    """One adaptation episode (module docstring); the parent decides what is kept from the returned record."""
    import time

    t0 = time.perf_counter()
    cfg = _STATE["config"]
    policy = _STATE["policy"]
    env = _env(job.task)
    monitor = _monitor()
    dagger = cfg["mode"] in DAGGER_MODES and monitor.calibration is not None
    record_policy = cfg["mode"] in FILTERED_MODES
    obs, _ = env.reset(seed=job.seed)
    policy.reset(seed=job.seed)
    monitor.reset()
    step = 0
    original = policy.predict_chunk

    def watched(o, *a, **k):
        chunk = original(o, *a, **k)
        monitor.on_chunk(chunk, step)
        return chunk

    frames = _Frames(tuple(cfg["cameras"])) if record_policy else None
    signals, actions, states = [], [], []
    success_step = alarm_step = None
    policy.predict_chunk = watched
    try:
        while step < cfg["max_steps"]:
            action = np.asarray(policy.select_action(obs), np.float32)
            if frames is not None:
                frames.add(obs, action)
            rec = monitor.step(obs["state"], action)
            signals.append([rec.signals.get(k, 0.0) for k in SIGNALS])
            actions.append(action)
            states.append(np.asarray(obs["state"], np.float32))
            obs, _, terminated, truncated, info = env.step(action)
            step += 1
            if info["success"] and success_step is None:
                success_step = step - 1
            if success_step is not None and step - 1 - success_step >= cfg["steps_after_success"]:
                break
            if rec.alarm and success_step is None and alarm_step is None:
                alarm_step = step - 1
                if dagger:
                    break
            if terminated or truncated:
                break
    finally:
        policy.predict_chunk = original
    result = AdaptResult(job.task, job.index, job.seed, env.instruction, success_step is not None, step, alarm_step,
                         None, np.asarray(signals, np.float32).reshape(-1, len(SIGNALS)),
                         np.asarray(actions, np.float32).reshape(-1, 4), np.asarray(states, np.float32).reshape(-1, 4),
                         success_step)
    if dagger and alarm_step is not None:
        _expert_finishes(env, obs, result)
    elif frames is not None and success_step is not None:
        result.recorded = frames.take("policy_rollout", 0, success_step)
    result.seconds = time.perf_counter() - t0
    return result


def takeover(job: TakeoverJob) -> AdaptResult:
    """Replay the policy's first actions from the seed, then let the expert finish (a deferred intervention)."""
    import time

    t0 = time.perf_counter()
    env = _env(job.task)
    obs, _ = env.reset(seed=job.seed)
    for a in job.actions:
        obs, *_ = env.step(a)
    result = AdaptResult(job.task, job.index, job.seed, env.instruction, False, len(job.actions),
                         len(job.actions) - 1, None, np.zeros((0, len(SIGNALS)), np.float32), job.actions,
                         np.zeros((0, 4), np.float32))
    result.extra["replayed_state"] = np.asarray(obs["state"], np.float32)
    _expert_finishes(env, obs, result)
    result.seconds = time.perf_counter() - t0
    return result


def _expert_finishes(env, obs: dict[str, Any], result: AdaptResult) -> None:
    """The scripted expert acts from ``obs`` (the takeover point) for up to ``expert_steps`` steps."""
    cfg = _STATE["config"]
    frames = _Frames(tuple(cfg["cameras"]))
    success_step = None
    for i in range(cfg["expert_steps"]):
        action = env.expert_action()
        frames.add(obs, action)
        obs, _, terminated, truncated, info = env.step(action)
        if info["success"] and success_step is None:
            success_step = i
        if success_step is not None and i - success_step >= cfg["steps_after_success"]:
            break
        if terminated or truncated:
            break
    result.expert_success = success_step is not None
    if result.expert_success:
        result.recorded = frames.take("intervention", result.steps, success_step)
